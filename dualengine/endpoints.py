"""Where the services answer, for every client: Prefect, MLflow and Weaviate URLs, free ports,
and the credentials clients send.

The environment wins (PREFECT_API_URL, MLFLOW_TRACKING_URI, DUALENGINE_WEAVIATE_URL: an
external service), then what `services up` recorded in the state folder's `services.json`,
then the default ports. `export_endpoints` hands the endpoints and the credentials to the
clients of this process and its children. The served pyfunc packs this module: it needs no
process supervision (dualengine/services.py).
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from dualengine import credentials
from dualengine.settings import Settings

# the environment variable that names each server's URL, and the path of its API
URL_ENVIRONMENT = {"prefect": ("PREFECT_API_URL", "/api"), "mlflow": ("MLFLOW_TRACKING_URI", "")}


@dataclass
class Endpoints:
    """Where each service answers."""

    prefect_api_url: str
    mlflow_tracking_uri: str
    weaviate_http: str
    weaviate_grpc_port: int
    external: list[str] = field(default_factory=list)

    @property
    def weaviate_host_port(self) -> tuple[str, int]:
        parsed = httpx.URL(self.weaviate_http)
        return parsed.host, parsed.port or 80


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


LISTEN_PORTS_FROM = 15000
_HANDED_OUT: set[int] = set()  # ports this process chose: never chosen twice (not yet bound)


def ephemeral_port_range() -> tuple[int, int]:
    """The kernel's range for outgoing connections' local ports (Linux; else IANA's)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 49152, 65535


def free_port() -> int:
    """A free port below the ephemeral range: an outgoing connection can take any ephemeral
    port as its local port while a killed server is down, and the server's restart on its
    own port then fails with `address already in use` (seen with a Weaviate node's gossip
    port). Falls back to a kernel-chosen port when no such port is free."""
    try:
        return free_port_block(1)
    except RuntimeError:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])


def free_port_block(size: int, start: int = LISTEN_PORTS_FROM, stop: int | None = None) -> int:
    """First port of `size` consecutive free ports below the ephemeral range (Weaviate's
    cluster ports; see `free_port`)."""
    import random

    stop = stop or ephemeral_port_range()[0]
    rng = random.Random(f"{os.getpid()}:{time.time_ns()}")
    for _ in range(200):
        base = rng.randrange(start, max(start + 1, stop - size))
        ports = set(range(base, base + size))
        if not ports & _HANDED_OUT and all(port_is_free(p) for p in ports):
            _HANDED_OUT.update(ports)
            return base
    raise RuntimeError(f"no block of {size} free ports found")


def preferred_or_free(port: int) -> int:
    return port if port_is_free(port) else free_port()


def _state_file(settings: Settings) -> Path:
    return settings.state / "services.json"


def read_state(settings: Settings) -> dict[str, Any]:
    path = _state_file(settings)
    if not path.exists():
        return {}
    return json.loads(path.read_text())


def write_state(settings: Settings, state: dict[str, Any]) -> None:
    credentials.private_dir(settings.state)
    credentials.write_private(_state_file(settings), json.dumps(state, indent=2, sort_keys=True))


def _pick(settings: Settings, state: dict[str, Any], service: str, external: list[str]) -> str:
    """The env URL wins; it is external unless it is the address `services up` manages."""
    env_name, path = URL_ENVIRONMENT[service]
    recorded = state.get(service, {}).get("url")
    local_default = f"http://127.0.0.1:{getattr(settings, f'{service}_port')}{path}"
    from_env = os.environ.get(env_name)
    if from_env and from_env.rstrip("/") not in {
        (recorded or "").rstrip("/"),
        local_default.rstrip("/"),
    }:
        external.append(service)
    return from_env or recorded or local_default


def resolve_endpoints(settings: Settings) -> Endpoints:
    """Environment first, then what `services up` recorded, then the default ports."""
    state = read_state(settings)
    external: list[str] = []
    prefect, mlflow_uri = (_pick(settings, state, name, external) for name in URL_ENVIRONMENT)
    if settings.weaviate_url:
        external.append("weaviate")
        weaviate_http = settings.weaviate_url.rstrip("/")
        grpc = settings.weaviate_grpc_port or 50051
    else:
        weaviate_http = state.get("weaviate", {}).get(
            "url", f"http://127.0.0.1:{settings.weaviate_port}"
        )
        grpc = state.get("weaviate", {}).get("grpc_port", settings.weaviate_grpc_port or 50051)
    return Endpoints(
        prefect_api_url=prefect,
        mlflow_tracking_uri=mlflow_uri,
        weaviate_http=weaviate_http,
        weaviate_grpc_port=int(grpc),
        external=external,
    )


def client_credentials(settings: Settings, endpoints: Endpoints | None = None):
    """The credentials clients send to these endpoints (configured, else generated locally)."""
    endpoints = endpoints or resolve_endpoints(settings)
    return credentials.client_credentials(settings, endpoints.external)


def export_endpoints(settings: Settings) -> Endpoints:
    """Put the endpoints and their credentials into os.environ before prefect or mlflow are
    imported, so this process and every child (flow runs, `accelerate launch` workers,
    `mlflow models serve`) reach the services authenticated."""
    endpoints = resolve_endpoints(settings)
    os.environ["PREFECT_API_URL"] = endpoints.prefect_api_url
    os.environ["MLFLOW_TRACKING_URI"] = endpoints.mlflow_tracking_uri
    os.environ.update(client_credentials(settings, endpoints).environment())
    os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")
    return endpoints


def health_url(name: str, endpoints: Endpoints, info: dict[str, Any] | None = None) -> str:
    if name == "prefect":
        return endpoints.prefect_api_url.rstrip("/") + "/health"
    if name == "mlflow":
        return endpoints.mlflow_tracking_uri.rstrip("/") + "/health"
    if name == "s3":
        return (info or {}).get("url", "http://127.0.0.1:0") + "/healthz"
    if name.startswith("weaviate-node"):
        return (info or {}).get("url", "http://127.0.0.1:0") + "/v1/.well-known/ready"
    return endpoints.weaviate_http + "/v1/.well-known/ready"


def is_healthy(url: str, timeout: float = 2.0) -> bool:
    try:
        return httpx.get(url, timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False
