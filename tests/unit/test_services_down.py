"""`services down` kills a recorded process group only while the PID is still the process that
`services up` started (same start time, same program); a reused PID is left alone."""

import subprocess
import time

import pytest

from dualengine import endpoints, processes, services
from dualengine.settings import Settings


@pytest.fixture
def sleeper():
    process = subprocess.Popen(["sleep", "60"], start_new_session=True)
    yield process
    if process.poll() is None:
        process.kill()
    process.wait()


def _record(settings: Settings, process, **changes) -> None:
    identity = processes.process_identity(process.pid)
    info = {"pid": process.pid, "program": "sleep", "start_ticks": identity["start_ticks"]}
    endpoints.write_state(settings, {"weaviate": info | changes})


def _wait_gone(process, seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return True
        time.sleep(0.05)
    return False


def test_identity_reads_start_time_and_command_line(sleeper):
    identity = processes.process_identity(sleeper.pid)
    assert identity["cmdline"] == ["sleep", "60"] and identity["start_ticks"] > 0
    assert processes.process_identity(None) is None


def test_down_stops_the_process_it_started(tmp_path, sleeper):
    settings = Settings(state_dir=tmp_path)
    _record(settings, sleeper)
    messages: list[str] = []
    services.down(settings, progress=messages.append)
    assert _wait_gone(sleeper) and messages == ["weaviate: stopped"]
    assert endpoints.read_state(settings)["weaviate"]["pid"] is None


def test_down_leaves_a_reused_pid_alone(tmp_path, sleeper):
    settings = Settings(state_dir=tmp_path)
    start = processes.process_identity(sleeper.pid)["start_ticks"]
    _record(settings, sleeper, start_ticks=start - 1)  # as if our process had died earlier
    messages: list[str] = []
    services.down(settings, progress=messages.append)
    assert sleeper.poll() is None, "a process that is not ours was killed"
    assert "PID was reused" in messages[0] and "not stopped" in messages[0]
    assert endpoints.read_state(settings)["weaviate"]["pid"] is None  # forgotten, not killed


def test_down_leaves_another_program_alone(tmp_path, sleeper):
    settings = Settings(state_dir=tmp_path)
    _record(settings, sleeper, program="weaviate-server")
    messages: list[str] = []
    services.down(settings, progress=messages.append)
    assert sleeper.poll() is None
    assert "not weaviate-server" in messages[0]


def test_legacy_record_without_start_time_needs_the_service_name(tmp_path, sleeper):
    settings = Settings(state_dir=tmp_path)
    endpoints.write_state(settings, {"weaviate": {"pid": sleeper.pid}})
    reason = processes.not_ours({"pid": sleeper.pid}, "weaviate")
    assert reason and "not weaviate" in reason
    services.down(settings, progress=lambda m: None)
    assert sleeper.poll() is None


def test_down_with_a_dead_pid_is_quiet(tmp_path):
    settings = Settings(state_dir=tmp_path)
    process = subprocess.Popen(["true"], start_new_session=True)
    process.wait()
    endpoints.write_state(settings, {"mlflow": {"pid": process.pid, "start_ticks": 1}})
    messages: list[str] = []
    services.down(settings, progress=messages.append)
    assert messages == ["mlflow: stopped"]
