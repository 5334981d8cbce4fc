"""Progress for long work: a rich bar in the terminal and a Prefect progress artifact in the UI."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager


def _in_prefect_run() -> bool:
    if "prefect" not in sys.modules:
        return False
    from prefect.context import FlowRunContext, TaskRunContext

    return FlowRunContext.get() is not None or TaskRunContext.get() is not None


class ProgressReporter:
    """Advance a terminal bar and, inside a Prefect run, a progress artifact (in 5 % steps)."""

    def __init__(self, description: str, total: int, key: str | None = None):
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.total = max(total, 1)
        self.done = 0
        self._bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            transient=False,
            console=Console(stderr=True),
        )
        self._task = self._bar.add_task(description, total=self.total)
        self._description = description
        self._plain = not self._bar.console.is_terminal
        self._last_line = 0
        self._artifact_id = None
        self._last_percent = -1.0
        if _in_prefect_run():
            from prefect.artifacts import create_progress_artifact

            self._artifact_id = create_progress_artifact(
                progress=0.0, key=key, description=description
            )

    def advance(self, amount: int = 1) -> None:
        self.done += amount
        self._bar.update(self._task, advance=amount)
        percent = min(100.0, 100.0 * self.done / self.total)
        if self._plain and (percent - self._last_line >= 10 or self.done == self.total):
            elapsed = self._bar.tasks[0].elapsed or 0.0
            print(
                f"{self._description}: {self.done}/{self.total} ({percent:.0f} %, {elapsed:.1f} s)",
                file=sys.stderr,
                flush=True,
            )
            self._last_line = percent
        if self._artifact_id is not None and (percent - self._last_percent >= 5 or percent >= 100):
            from prefect.artifacts import update_progress_artifact

            update_progress_artifact(self._artifact_id, progress=percent)
            self._last_percent = percent


class PlainReporter:
    """Progress lines on stderr every 10 %, where rich is not installed (a bare GPU image)."""

    def __init__(self, description: str, total: int):
        import time

        self.total, self.done, self._last = max(total, 1), 0, -10.0
        self._description, self._started = description, time.perf_counter()
        self._bar = self  # start()/stop() below, like rich's Progress

    def advance(self, amount: int = 1) -> None:
        import time

        self.done += amount
        percent = min(100.0, 100.0 * self.done / self.total)
        if percent - self._last >= 10 or self.done == self.total:
            elapsed = time.perf_counter() - self._started
            print(
                f"{self._description}: {self.done}/{self.total} ({percent:.0f} %, {elapsed:.1f} s)",
                file=sys.stderr,
                flush=True,
            )
            self._last = percent

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass


@contextmanager
def progress(
    description: str, total: int, key: str | None = None
) -> Iterator[ProgressReporter | PlainReporter]:
    """Context manager around ProgressReporter that always closes the terminal bar."""
    try:
        import rich  # noqa: F401
    except ImportError:
        yield PlainReporter(description, total)
        return
    reporter = ProgressReporter(description, total, key)
    reporter._bar.start()
    try:
        yield reporter
    finally:
        reporter._bar.stop()
