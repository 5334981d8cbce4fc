"""How `services up` starts each service: its command line, environment and the facts it
records (URL, ports, store), and the one-time set-up once it answers. Prefect and MLflow run
with authentication on SQLite (MLflow: or PostgreSQL + S3); Weaviate as one or more nodes."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from dualengine import credentials, object_store, postgres_server, weaviate_server
from dualengine.endpoints import (
    free_port,
    free_port_block,
    port_is_free,
    preferred_or_free,
    read_state,
)
from dualengine.processes import program_path, temporary_environment
from dualengine.settings import Settings

WEAVIATE_NODE_PORTS = weaviate_server.NODE_PORTS


def weaviate_node_name(index: int) -> str:
    """Service name of Weaviate node `index` (1 is the node clients talk to)."""
    return "weaviate" if index == 1 else f"weaviate-node{index}"


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
    command = [program_path("prefect"), "server", "start", "--host", "127.0.0.1"]
    command += ["--port", str(port)]
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
        program_path("mlflow"),
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
    env = object_store.server_environment(settings)
    port = object_store.s3_port(base)
    return (
        object_store.server_command(binary, data, base),
        env,
        {
            "url": f"http://127.0.0.1:{port}",
            "port": port,
        },
    )


def after_start(settings: Settings, name: str) -> None:
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


def startable(name: str) -> bool:
    """Whether `services up` knows how to start a service of this name."""
    return name in SPECS or name.startswith("weaviate-node")


def spec(settings: Settings, name: str) -> tuple[list[str], dict[str, str], dict[str, Any]]:
    """Command line, environment and recorded facts of the service `name`."""
    if name.startswith("weaviate-node"):
        return _weaviate_node_spec(settings, int(name.removeprefix("weaviate-node")))
    return SPECS[name](settings)
