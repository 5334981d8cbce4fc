"""The Weaviate server binary: `go install`ed, or fetched by weaviate-client's embedded mode.

Both give the same pinned server version; the binary then runs as one local node.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from dualengine.settings import WEAVIATE_VERSION, Settings

GO_PACKAGE = f"github.com/weaviate/weaviate/cmd/weaviate-server@v{WEAVIATE_VERSION}"


class WeaviateBinaryError(RuntimeError):
    """No Weaviate binary could be had; the message says what was tried and what to do."""


def go_binary_path(settings: Settings) -> Path:
    return settings.cache_dir / f"weaviate-v{WEAVIATE_VERSION}" / "weaviate-server"


def embedded_binary_dir(settings: Settings) -> Path:
    return settings.cache_dir / "weaviate-embedded"


def find_binary(settings: Settings) -> Path | None:
    """An already installed binary, if any."""
    built = go_binary_path(settings)
    if built.exists():
        return built
    folder = embedded_binary_dir(settings)
    if folder.exists():
        for candidate in sorted(folder.glob(f"weaviate-*{WEAVIATE_VERSION}*")):
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return candidate
    return None


def build_with_go(settings: Settings) -> Path:
    """`go install` the pinned server into the project cache (CGO off, as upstream builds it)."""
    go = shutil.which("go")
    if go is None:
        raise WeaviateBinaryError("Go is not installed")
    target = go_binary_path(settings)
    target.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, CGO_ENABLED="0", GOBIN=str(target.parent))
    result = subprocess.run(
        [go, "install", GO_PACKAGE], env=env, capture_output=True, text=True, check=False
    )
    if result.returncode != 0 or not target.exists():
        raise WeaviateBinaryError(
            f"`go install {GO_PACKAGE}` failed (exit {result.returncode}): "
            f"{result.stderr.strip()[-2000:]}"
        )
    return target


def download_embedded(settings: Settings) -> Path:
    """Let weaviate-client's embedded mode download the pinned release (needs internet)."""
    from weaviate.embedded import EmbeddedOptions, EmbeddedV4

    folder = embedded_binary_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    embedded = EmbeddedV4(EmbeddedOptions(version=WEAVIATE_VERSION, binary_path=str(folder)))
    try:
        embedded.ensure_weaviate_binary_exists()
    except Exception as exc:  # network errors come in many types
        raise WeaviateBinaryError(
            f"weaviate-client embedded download of v{WEAVIATE_VERSION} failed: {exc}"
        ) from exc
    return Path(embedded._weaviate_binary_path)


def ensure_binary(settings: Settings) -> Path:
    """Return a runnable weaviate-server, building or downloading it the first time."""
    found = find_binary(settings)
    if found is not None:
        return found
    errors: list[str] = []
    order = {
        "auto": (build_with_go, download_embedded),
        "binary": (build_with_go,),
        "embedded": (download_embedded,),
    }[settings.weaviate_mode]
    for attempt in order:
        try:
            return attempt(settings)
        except WeaviateBinaryError as exc:
            errors.append(str(exc))
    raise WeaviateBinaryError(
        "no Weaviate server binary: "
        + "; ".join(errors)
        + ". Install Go (https://go.dev/dl) and rerun `make setup`, allow the embedded download, "
        "or point DUALENGINE_WEAVIATE_URL at a running Weaviate."
    )


API_KEY_USER = "dualengine"


def auth_environment(api_key: str, user: str = API_KEY_USER) -> dict[str, str]:
    """API-key authentication, anonymous access off; the key's user is the only (admin) user."""
    if not api_key or "," in api_key:
        raise ValueError("the Weaviate API key must be a non-empty string without commas")
    return {
        "AUTHENTICATION_ANONYMOUS_ACCESS_ENABLED": "false",
        "AUTHENTICATION_APIKEY_ENABLED": "true",
        "AUTHENTICATION_APIKEY_ALLOWED_KEYS": api_key,
        "AUTHENTICATION_APIKEY_USERS": user,
        "AUTHORIZATION_ADMINLIST_ENABLED": "true",
        "AUTHORIZATION_ADMINLIST_USERS": user,
    }


def server_environment(
    data_dir: Path, http_port: int, grpc_port: int, base_port: int, api_key: str
) -> dict[str, str]:
    """Environment for one local node on 127.0.0.1 with API-key auth; base_port..+4 for
    gossip/data/raft/raft-RPC/profiling."""
    return {
        **auth_environment(api_key),
        "DEFAULT_VECTORIZER_MODULE": "none",
        "ENABLE_MODULES": "",
        "PERSISTENCE_DATA_PATH": str(data_dir),
        "QUERY_DEFAULTS_LIMIT": "25",
        "CLUSTER_HOSTNAME": "dualengine-node1",
        "CLUSTER_BIND_ADDR": "127.0.0.1",
        "CLUSTER_ADVERTISE_ADDR": "127.0.0.1",
        "CLUSTER_IN_LOCALHOST": "true",
        "CLUSTER_GOSSIP_BIND_PORT": str(base_port),
        "CLUSTER_DATA_BIND_PORT": str(base_port + 1),
        "RAFT_PORT": str(base_port + 2),
        "RAFT_INTERNAL_RPC_PORT": str(base_port + 3),
        "RAFT_BOOTSTRAP_EXPECT": "1",
        "RAFT_JOIN": "dualengine-node1",
        "GO_PROFILING_PORT": str(base_port + 4),
        "GRPC_PORT": str(grpc_port),
        "DISABLE_TELEMETRY": "true",
        "LOG_LEVEL": "warning",
        "PROMETHEUS_MONITORING_ENABLED": "false",
    }


NODE_PORTS = 7  # per node: gossip, data, raft, raft RPC, profiling, HTTP, gRPC


def node_hostname(index: int) -> str:
    return f"dualengine-node{index}"


def cluster_environment(index: int, nodes: int, cluster_base: int) -> dict[str, str]:
    """What makes node `index` of `nodes` (on 127.0.0.1) one cluster with the others: its
    name, the Raft voters with their ports, and node 1's gossip port to join. Node i's ports
    start at cluster_base + NODE_PORTS * (i - 1) in the order of `server_environment`."""

    def base(i: int) -> int:
        return cluster_base + NODE_PORTS * (i - 1)

    env = {
        "CLUSTER_HOSTNAME": node_hostname(index),
        "RAFT_JOIN": ",".join(f"{node_hostname(i)}:{base(i) + 2}" for i in range(1, nodes + 1)),
        "RAFT_BOOTSTRAP_EXPECT": str(nodes),
        # Weaviate's production advice: tolerate slow heartbeats (a busy host) without
        # needless elections; a dead leader is still replaced within seconds
        "RAFT_TIMEOUTS_MULTIPLIER": "5",
    }
    if index > 1:
        env["CLUSTER_JOIN"] = f"127.0.0.1:{base(1)}"
    return env


def server_command(binary: Path, http_port: int) -> list[str]:
    return [str(binary), "--host", "127.0.0.1", "--port", str(http_port), "--scheme", "http"]
