"""Fault-suite fixtures: services of its own (started by the project's helpers in a state
folder of their own, so killing them never touches the session stack other tests share)."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from dualengine import endpoints, processes, services
from dualengine.settings import Settings


@dataclass
class OwnService:
    """One service of the fault suite: its settings, and kill -9 / restart."""

    name: str
    settings: Settings
    env: dict[str, str] = field(default_factory=dict)  # what the project's helpers read

    def environment(self) -> contextlib.AbstractContextManager[None]:
        return processes.temporary_environment(self.env)

    def pid(self) -> int:
        return int(endpoints.read_state(self.settings)[self.name]["pid"])

    def kill(self) -> None:
        """SIGKILL the process group, and wait until it is gone."""
        pid = self.pid()
        os.killpg(pid, signal.SIGKILL)
        deadline = time.monotonic() + 20
        while processes.pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not processes.pid_alive(pid), f"{self.name} (pid {pid}) survived SIGKILL"

    def start(self) -> None:
        try:
            with self.environment():
                services.up(self.settings, timeout=400, progress=lambda m: None, only=(self.name,))
        except (RuntimeError, TimeoutError) as exc:
            log = self.settings.state / "logs" / f"{self.name}.log"
            tail = log.read_text(errors="replace")[-3000:] if log.exists() else "(no log)"
            raise AssertionError(f"{exc}\n{tail}") from exc

    def healthy(self) -> bool:
        with self.environment():
            found = endpoints.resolve_endpoints(self.settings)
        return endpoints.is_healthy(endpoints.health_url(self.name, found))

    def stop(self) -> None:
        with self.environment():
            services.down(self.settings, progress=lambda m: None)


def own_settings(settings: Settings, folder: Path, **ports: int) -> Settings:
    """The session settings with a state folder and ports of their own."""
    return settings.model_copy(update={"state_dir": folder, **ports})


@pytest.fixture
def own_weaviate(settings, tmp_path, monkeypatch):
    """A Weaviate node of this test only, on free loopback ports, stopped at the end. The
    client's batcher gives up at once instead of waiting ~10 min for a dead server to
    come back (its WEAVIATE_BATCH_MAX_RETRIES default), so a kill shows up in seconds."""
    from weaviate.collections.batch import base

    monkeypatch.setattr(base, "MAX_RETRIES", 0)
    service = OwnService(
        "weaviate",
        own_settings(
            settings,
            tmp_path / "state",
            weaviate_port=endpoints.free_port(),
            weaviate_grpc_port=endpoints.free_port(),
        ),
    )
    try:
        service.start()
        yield service
    finally:
        service.stop()


@pytest.fixture
def own_mlflow(settings, tmp_path):
    """An MLflow server of this test only (its own SQLite store and port)."""
    port = endpoints.free_port()
    service = OwnService(
        "mlflow",
        own_settings(settings, tmp_path / "mlflow-state", mlflow_port=port),
        env={
            "DUALENGINE_MLFLOW_STORE": str(tmp_path / "mlflow-store"),
            "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{port}",
        },
    )
    try:
        service.start()
        yield service
    finally:
        service.stop()
