"""Local services: a Prefect server, an MLflow tracking server and Weaviate on 127.0.0.1.

Beyond the defaults: `--weaviate-nodes N` starts N Weaviate nodes of the same binary as one
cluster (Raft join, distinct ports); `--mlflow-backend postgres` starts a private PostgreSQL
cluster and an S3 server (SeaweedFS) first and runs MLflow on them.

Each runs as a child process in its own session with a log and a PID file in the state folder;
`services.json` there records the endpoints so every later command finds them. A service given
by the environment (PREFECT_API_URL, MLFLOW_TRACKING_URI, DUALENGINE_WEAVIATE_URL) is external:
it is checked, never started or stopped. Every managed service requires authentication with
secrets generated per state folder (see dualengine/credentials.py); `export_endpoints` hands
the endpoints and the credentials to the clients of this process and its children.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from dualengine import credentials, object_store, postgres_server, weaviate_server
from dualengine.settings import Settings

SERVICE_NAMES = ("prefect", "mlflow", "weaviate")
# started and healthy before the service that needs them
NEEDS = {"mlflow": ("postgres", "s3")}
WEAVIATE_NODE_PORTS = weaviate_server.NODE_PORTS


def with_recorded_shape(settings: Settings) -> Settings:
    """The settings with the cluster shape `services up` recorded (nodes, MLflow backend),
    unless the environment sets them: later commands find every node `up` started."""
    recorded = read_state(settings).get("shape", {})
    update = {
        key: value
        for key, value in recorded.items()
        if f"DUALENGINE_{key.upper()}" not in os.environ and key in Settings.model_fields
    }
    return settings.model_copy(update=update) if update else settings


def managed_names(settings: Settings) -> tuple[str, ...]:
    """Every service of this configuration, in start order."""
    names = ["prefect"]
    if settings.mlflow_backend == "postgres":
        names += ["postgres", "s3"]
    names += ["mlflow", "weaviate"]
    names += [weaviate_node_name(i) for i in range(2, settings.weaviate_nodes + 1)]
    return tuple(names)


def weaviate_node_name(index: int) -> str:
    """Service name of Weaviate node `index` (1 is the node clients talk to)."""
    return "weaviate" if index == 1 else f"weaviate-node{index}"


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


@dataclass
class ServiceStatus:
    name: str
    url: str
    healthy: bool
    pid: int | None
    managed: bool
    log: str | None


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_port_block(size: int, start: int = 20000, stop: int = 60000) -> int:
    """First port of `size` consecutive free ports (Weaviate's cluster ports)."""
    import random

    rng = random.Random(os.getpid() ^ int(time.time()))
    for _ in range(200):
        base = rng.randrange(start, stop - size)
        if all(port_is_free(base + i) for i in range(size)):
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


def _pick(
    env_name: str, recorded: str | None, local_default: str, external: list[str], service: str
) -> str:
    """The env URL wins; it is external unless it is the address `services up` manages."""
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
    prefect = _pick(
        "PREFECT_API_URL",
        state.get("prefect", {}).get("url"),
        f"http://127.0.0.1:{settings.prefect_port}/api",
        external,
        "prefect",
    )
    mlflow_uri = _pick(
        "MLFLOW_TRACKING_URI",
        state.get("mlflow", {}).get("url"),
        f"http://127.0.0.1:{settings.mlflow_port}",
        external,
        "mlflow",
    )
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


def service_healthy(
    settings: Settings, name: str, endpoints: Endpoints, info: dict[str, Any] | None
) -> bool:
    """Whether the service answers (PostgreSQL: a password login)."""
    if name == "postgres":
        port = (info or {}).get("port")
        if not port:
            return False
        return postgres_server.is_ready(postgres_server.ensure_cluster(settings), int(port))
    return is_healthy(health_url(name, endpoints, info))


def is_healthy(url: str, timeout: float = 2.0) -> bool:
    try:
        return httpx.get(url, timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child counts as gone
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split()[2] != "Z"
    except OSError:
        return True


def process_identity(pid: int | None) -> dict[str, Any] | None:
    """Start time (clock ticks since boot) and command line of a live process, from /proc."""
    if not pid:
        return None
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    fields = stat_line[stat_line.rindex(")") + 2 :].split()  # the name may hold spaces
    if fields[0] == "Z":
        return None
    return {
        "start_ticks": int(fields[19]),  # field 22 of proc(5)
        "cmdline": [part.decode(errors="replace") for part in raw.split(b"\0") if part],
    }


def not_ours(info: dict[str, Any], name: str) -> str | None:
    """None when the recorded PID is still the process `services up` started; else why not.

    The start time recorded at launch must match (a reused PID has another one), and the
    command line must still name the program that was started."""
    pid = info.get("pid")
    current = process_identity(pid)
    if current is None:
        return f"pid {pid} is not running"
    program = info.get("program") or name
    if info.get("start_ticks") is None:
        if not any(name in part for part in current["cmdline"]):
            return f"pid {pid} runs {' '.join(current['cmdline'])[:200]!r}, not {name}"
        return None  # recorded by an older version: the command line is all we can check
    if current["start_ticks"] != info["start_ticks"]:
        return (
            f"pid {pid} was started at tick {current['start_ticks']}, the recorded {name} at "
            f"tick {info['start_ticks']}: the PID was reused"
        )
    if not any(program in part for part in current["cmdline"]):
        return f"pid {pid} runs {' '.join(current['cmdline'])[:200]!r}, not {program}"
    return None


def _bin(name: str) -> str:
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else name


def _launch(
    settings: Settings,
    name: str,
    command: list[str],
    env: dict[str, str],
    run_as: str | None = None,
) -> subprocess.Popen:
    logs = settings.state / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log = open(logs / f"{name}.log", "ab")  # noqa: SIM115 - handed to the child
    process = subprocess.Popen(
        command,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env={**os.environ, **env},
        cwd=str(settings.state),
        start_new_session=True,
        **({"user": run_as, "group": run_as, "extra_groups": []} if run_as else {}),
    )
    (settings.state / f"{name}.pid").write_text(str(process.pid))
    return process


def _prefect_spec(settings: Settings) -> tuple[list[str], dict[str, str], dict[str, Any]]:
    port = preferred_or_free(settings.prefect_port)
    home = settings.state / "prefect"
    home.mkdir(parents=True, exist_ok=True)
    auth = credentials.local_secrets(settings).prefect_auth_string
    env = {
        "PREFECT_SERVER_API_AUTH_STRING": auth,
        "PREFECT_API_AUTH_STRING": auth,
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{home / 'prefect.db'}",
        "PREFECT_SERVER_API_HOST": "127.0.0.1",
        "PREFECT_SERVER_API_PORT": str(port),
        "PREFECT_UI_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_LOGGING_LEVEL": "WARNING",
    }
    env.pop("PREFECT_API_URL", None)
    command = [_bin("prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    return command, env, {"url": f"http://127.0.0.1:{port}/api", "port": port}


def mlflow_store(settings: Settings) -> Path:
    return Path(os.environ.get("DUALENGINE_MLFLOW_STORE") or settings.mlflow_dir)


def _ini(value: str) -> str:
    """A value for configparser: one line, '%' escaped from interpolation."""
    if "\n" in value or "\r" in value:
        raise ValueError("MLflow credentials must be a single line")
    return value.replace("%", "%%")


def mlflow_auth_config(settings: Settings) -> Path:
    """The basic-auth app's config (0600): its own user database in the state folder and the
    admin (configured, else generated); new users get no permission until the admin grants
    one. A database whose admin was created with other credentials is replaced."""
    secrets = credentials.local_secrets(settings)
    folder = credentials.private_dir(settings.state / "mlflow-auth")
    database = folder / "basic_auth.db"
    admin = f"{secrets.mlflow_admin_username}:{secrets.mlflow_admin_password}"
    fingerprint = hashlib.sha256(admin.encode()).hexdigest()
    marker = folder / "admin.sha256"
    if not marker.exists() or marker.read_text().strip() != fingerprint:
        database.unlink(missing_ok=True)  # its admin had other credentials
        credentials.write_private(marker, fingerprint)
    path = folder / "basic_auth.ini"
    credentials.write_private(
        path,
        "[mlflow]\n"
        "default_permission = NO_PERMISSIONS\n"
        f"database_uri = sqlite:///{database}\n"
        f"admin_username = {_ini(secrets.mlflow_admin_username)}\n"
        f"admin_password = {_ini(secrets.mlflow_admin_password)}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        "grant_default_workspace_access = false\n"
        # one worker: a password change through the API invalidates its cache entry at once
        "auth_cache_ttl_seconds = 60\n",
    )
    return path


def _mlflow_spec(settings: Settings) -> tuple[list[str], dict[str, str], dict[str, Any]]:
    port = preferred_or_free(settings.mlflow_port)
    store = mlflow_store(settings)
    (store / "artifacts").mkdir(parents=True, exist_ok=True)
    command = [
        _bin("mlflow"),
        "server",
        "--app-name",
        "basic-auth",
        "--backend-store-uri",
        f"sqlite:///{store / 'mlflow.db'}",
        "--artifacts-destination",
        str(store / "artifacts"),
        "--serve-artifacts",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    secrets = credentials.local_secrets(settings)
    env = {
        "MLFLOW_AUTH_CONFIG_PATH": str(mlflow_auth_config(settings)),
        "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.mlflow_flask_secret_key,
        "MLFLOW_WEBHOOK_ALLOWED_SCHEMES": "http,https",
        "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS": "true",
        "MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY": secrets.webhook_encryption_key,
    }
    info = {"url": f"http://127.0.0.1:{port}", "port": port, "store": str(store)}
    if settings.mlflow_backend == "postgres":
        command, env, info = _on_postgres_and_s3(settings, command, env, info)
    return command, env, info


def _on_postgres_and_s3(
    settings: Settings, command: list[str], env: dict[str, str], info: dict[str, Any]
) -> tuple[list[str], dict[str, str], dict[str, Any]]:
    """The same server with its store on PostgreSQL and its artifacts on S3 (proxied by
    --serve-artifacts, so clients need no S3 credentials). The store URL, which holds the
    password, goes by environment, not on the command line."""
    state = read_state(settings)
    cluster = postgres_server.ensure_cluster(settings)
    pg_port = int(state["postgres"]["port"])
    s3_url = state["s3"]["url"]
    for option in ("--backend-store-uri", "--artifacts-destination"):
        at = command.index(option)
        del command[at : at + 2]
    env = (
        env
        | object_store.credentials(settings)
        | {
            "MLFLOW_BACKEND_STORE_URI": cluster.url(pg_port, "mlflow"),
            "MLFLOW_ARTIFACTS_DESTINATION": f"s3://{object_store.BUCKET}/artifacts",
            "MLFLOW_S3_ENDPOINT_URL": s3_url,
            "AWS_DEFAULT_REGION": "us-east-1",
        }
    )
    info = info | {
        "store": f"postgresql://127.0.0.1:{pg_port}/mlflow",
        "artifacts": f"s3://{object_store.BUCKET}/artifacts at {s3_url}",
    }
    return command, env, info


def _postgres_spec(settings: Settings) -> tuple[list[str], dict[str, str], dict[str, Any]]:
    cluster = postgres_server.ensure_cluster(settings)
    port = free_port()
    info = {"url": f"postgresql://127.0.0.1:{port}", "port": port, "run_as": cluster.run_as}
    return postgres_server.server_command(cluster, port), {}, info


def _s3_spec(settings: Settings) -> tuple[list[str], dict[str, str], dict[str, Any]]:
    binary = object_store.ensure_binary(settings)
    base = free_port_block(object_store.PORTS)
    data = settings.state / "s3-data"
    data.mkdir(parents=True, exist_ok=True)
    env = object_store.credentials(settings)
    port = object_store.s3_port(base)
    return (
        object_store.server_command(binary, data, base),
        env,
        {
            "url": f"http://127.0.0.1:{port}",
            "port": port,
        },
    )


def _after_start(settings: Settings, name: str) -> None:
    """One-time set-up once a service answers: MLflow's database and bucket."""
    state = read_state(settings)
    if name == "postgres":
        postgres_server.ensure_databases(
            postgres_server.ensure_cluster(settings), int(state["postgres"]["port"])
        )
    elif name == "s3":
        creds = object_store.credentials(settings)
        os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
        with temporary_environment(creds):
            object_store.ensure_bucket(object_store.BUCKET, state["s3"]["url"])


@contextlib.contextmanager
def temporary_environment(values: dict[str, str]):
    """These environment variables set for the block, the previous values restored after."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _weaviate_spec(settings: Settings) -> tuple[list[str], dict[str, str], dict[str, Any]]:
    return _weaviate_node_spec(settings, 1)


def _weaviate_node_spec(
    settings: Settings, index: int
) -> tuple[list[str], dict[str, str], dict[str, Any]]:
    """Node `index` of `settings.weaviate_nodes`: same binary, its own data folder and ports;
    a restarted node gets the ports and data it had."""
    binary = weaviate_server.ensure_binary(settings)
    name = weaviate_node_name(index)
    state = read_state(settings)
    previous = state.get(name, {})
    nodes = settings.weaviate_nodes
    cluster_base = state.get("weaviate", {}).get("cluster_base") if index > 1 else None
    size = WEAVIATE_NODE_PORTS * nodes
    if index == 1:
        cluster_base = previous.get("cluster_base")
        if not cluster_base or previous.get("nodes") != nodes or not port_is_free(cluster_base):
            cluster_base = free_port_block(size)
    base = int(cluster_base) + WEAVIATE_NODE_PORTS * (index - 1)
    if index == 1:  # a restarted node keeps its address when it is still free
        http_port = preferred_or_free(previous.get("port") or settings.weaviate_port)
        grpc_port = preferred_or_free(
            previous.get("grpc_port") or settings.weaviate_grpc_port or 50051
        )
    else:
        http_port, grpc_port = base + 5, base + 6
    data = settings.state / ("weaviate-data" if index == 1 else f"weaviate-data-node{index}")
    data.mkdir(parents=True, exist_ok=True)
    api_key = credentials.local_secrets(settings).weaviate_api_key
    env = weaviate_server.server_environment(data, http_port, grpc_port, base, api_key)
    if nodes > 1:
        env |= weaviate_server.cluster_environment(index, nodes, int(cluster_base))
    command = weaviate_server.server_command(binary, http_port)
    info = {
        "url": f"http://127.0.0.1:{http_port}",
        "port": http_port,
        "grpc_port": grpc_port,
        "node": env["CLUSTER_HOSTNAME"],
    }
    if index == 1:
        info |= {"cluster_base": int(cluster_base), "nodes": nodes}
    return command, env, info


SPECS = {
    "prefect": _prefect_spec,
    "mlflow": _mlflow_spec,
    "weaviate": _weaviate_spec,
    "postgres": _postgres_spec,
    "s3": _s3_spec,
}


def _startable(name: str) -> bool:
    return name in SPECS or name.startswith("weaviate-node")


def _spec(settings: Settings, name: str) -> tuple[list[str], dict[str, str], dict[str, Any]]:
    if name.startswith("weaviate-node"):
        return _weaviate_node_spec(settings, int(name.removeprefix("weaviate-node")))
    return SPECS[name](settings)


def status(settings: Settings) -> list[ServiceStatus]:
    """Health of every service, managed or external."""
    settings = with_recorded_shape(settings)
    endpoints = resolve_endpoints(settings)
    state = read_state(settings)
    rows = []
    names = list(managed_names(settings))
    names += [n for n in state if _startable(n) and n not in names and state[n].get("pid")]
    for name in names:
        info = state.get(name, {})
        managed = name not in endpoints.external
        if name == "weaviate":
            url = endpoints.weaviate_http
        elif name in {"prefect", "mlflow"}:
            url = health_url(name, endpoints).rsplit("/", 1)[0]
        else:
            url = info.get("url", "")
        rows.append(
            ServiceStatus(
                name=name,
                url=url,
                healthy=service_healthy(settings, name, endpoints, info),
                pid=info.get("pid") if managed else None,
                managed=managed,
                log=str(settings.state / "logs" / f"{name}.log") if managed else None,
            )
        )
    return rows


def up(
    settings: Settings,
    timeout: float = 180.0,
    progress=print,
    only: tuple[str, ...] | None = None,
) -> list[ServiceStatus]:
    """Start every managed service that is not already healthy, then wait for all of them.
    A service whose dependencies (NEEDS) were started here waits for them to answer first."""
    credentials.private_dir(settings.state)
    endpoints = resolve_endpoints(settings)
    state = read_state(settings)
    state["shape"] = {
        "weaviate_nodes": settings.weaviate_nodes,
        "mlflow_backend": settings.mlflow_backend,
    }
    started: dict[str, subprocess.Popen] = {}
    deadline = time.monotonic() + timeout
    for name in only or managed_names(settings):
        kind = "weaviate" if name.startswith("weaviate") else name
        if kind in endpoints.external or (
            name in NEEDS["mlflow"] and "mlflow" in endpoints.external
        ):
            progress(f"{name}: external endpoint, not started")
            continue
        info = state.get(name, {})
        if pid_alive(info.get("pid")) and service_healthy(settings, name, endpoints, info):
            progress(f"{name}: already running (pid {info['pid']})")
            if info.get("start_ticks") is None:
                progress(
                    f"{name}: started by an older dualengine, without authentication and "
                    "loopback-only binds: run `dualengine services down` and `up` again"
                )
            continue
        for needed in NEEDS.get(name, ()):
            if needed in started:
                _wait_healthy(settings, {needed: started.pop(needed)}, deadline, progress)
        command, env, info = _spec(settings, name)
        process = _launch(settings, name, command, env, run_as=info.pop("run_as", None))
        info["pid"] = process.pid
        info["program"] = Path(command[0]).name
        info["start_ticks"] = (process_identity(process.pid) or {}).get("start_ticks")
        state[name] = info
        write_state(settings, state)  # later specs (nodes, MLflow) read what this one chose
        started[name] = process
        progress(f"{name}: starting on {info['url']} (pid {process.pid})")
    _wait_healthy(settings, started, deadline, progress)
    return status(settings)


def _wait_healthy(
    settings: Settings, started: dict[str, subprocess.Popen], deadline: float, progress
) -> None:
    endpoints = resolve_endpoints(settings)
    for name, process in started.items():
        info = read_state(settings).get(name, {})
        while not service_healthy(settings, name, endpoints, info):
            if process.poll() is not None:
                raise RuntimeError(
                    f"{name} exited with code {process.returncode} during start-up; "
                    f"see {settings.state / 'logs' / (name + '.log')}"
                )
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name} not healthy at {info.get('url')} in time")
            time.sleep(0.5)
        _after_start(settings, name)
        progress(f"{name}: healthy")


def _stop_pid(pid: int, grace: float = 20.0) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            waited, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            waited = 0
        if waited == pid or not pid_alive(pid):
            break
        time.sleep(0.2)
    # whatever is left in the group (uvicorn workers, a hung server) goes now
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def down(settings: Settings, progress=print) -> None:
    """Stop the services this state folder started; external ones are left alone."""
    state = read_state(settings)
    names = list(managed_names(with_recorded_shape(settings)))
    names += [n for n in state if _startable(n) and n not in names]
    for name in reversed(names):
        info = state.get(name)
        if not info or not info.get("pid"):
            continue
        reason = not_ours(info, name) if process_identity(info["pid"]) else None
        if reason is not None:
            progress(f"{name}: not stopped, {reason}")
            info["pid"] = None
            continue
        # ours, or its leader is gone: Linux does not reuse a PID while a process group of
        # that id has members, so the group is still the one `up` started (or empty)
        _stop_pid(int(info["pid"]))
        (settings.state / f"{name}.pid").unlink(missing_ok=True)
        info["pid"] = None
        progress(f"{name}: stopped")
    write_state(settings, state)


def status_dicts(rows: list[ServiceStatus]) -> list[dict[str, Any]]:
    return [asdict(row) for row in rows]
