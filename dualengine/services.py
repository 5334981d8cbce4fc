"""Local services: start, check and stop a Prefect server, an MLflow tracking server and
Weaviate on 127.0.0.1.

Beyond the defaults: `--weaviate-nodes N` starts N Weaviate nodes of the same binary as one
cluster (Raft join, distinct ports); `--mlflow-backend postgres` starts a private PostgreSQL
cluster and an S3 server (SeaweedFS) first and runs MLflow on them.

Each runs as a child process in its own session with a log and a PID file in the state folder
(dualengine/processes.py; how each is started: dualengine/service_specs.py); `services.json`
there records the endpoints so every later command finds them (dualengine/endpoints.py). A
service given by the environment (PREFECT_API_URL, MLFLOW_TRACKING_URI,
DUALENGINE_WEAVIATE_URL) is external: it is checked, never started or stopped. Every managed
service requires authentication with secrets generated per state folder (see
dualengine/credentials.py).
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from dualengine import credentials, postgres_server
from dualengine.endpoints import (
    Endpoints,
    health_url,
    is_healthy,
    read_state,
    resolve_endpoints,
    write_state,
)
from dualengine.processes import launch, not_ours, pid_alive, process_identity, stop_pid
from dualengine.service_specs import after_start, spec, startable, weaviate_node_name
from dualengine.settings import Settings

SERVICE_NAMES = ("prefect", "mlflow", "weaviate")
# started and healthy before the service that needs them
NEEDS = {"mlflow": ("postgres", "s3")}


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


@dataclass
class ServiceStatus:
    name: str
    url: str
    healthy: bool
    pid: int | None
    managed: bool
    log: str | None


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


def status(settings: Settings) -> list[ServiceStatus]:
    """Health of every service, managed or external."""
    settings = with_recorded_shape(settings)
    endpoints = resolve_endpoints(settings)
    state = read_state(settings)
    rows = []
    names = list(managed_names(settings))
    names += [n for n in state if startable(n) and n not in names and state[n].get("pid")]
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
        command, env, info = spec(settings, name)
        process = launch(settings, name, command, env, run_as=info.pop("run_as", None))
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
        after_start(settings, name)
        progress(f"{name}: healthy")


def down(settings: Settings, progress=print) -> None:
    """Stop the services this state folder started; external ones are left alone."""
    state = read_state(settings)
    names = list(managed_names(with_recorded_shape(settings)))
    names += [n for n in state if startable(n) and n not in names]
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
        stop_pid(int(info["pid"]))
        (settings.state / f"{name}.pid").unlink(missing_ok=True)
        info["pid"] = None
        progress(f"{name}: stopped")
    write_state(settings, state)


def status_dicts(rows: list[ServiceStatus]) -> list[dict[str, Any]]:
    return [asdict(row) for row in rows]
