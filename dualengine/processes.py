"""Child processes of `services up`: launch one in its own session with a log and a PID file,
tell whether a recorded PID is still the process that was started, stop its process group;
and environment variables set for a block of code."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from dualengine.settings import Settings


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


def program_path(name: str) -> str:
    """The program installed next to this Python (the venv's `mlflow`), else its bare name."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else name


def launch(
    settings: Settings,
    name: str,
    command: list[str],
    env: dict[str, str],
    run_as: str | None = None,
) -> subprocess.Popen:
    """Start `command` in its own session, output appended to logs/<name>.log, pid in <name>.pid."""
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


def stop_pid(pid: int, grace: float = 20.0) -> None:
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
