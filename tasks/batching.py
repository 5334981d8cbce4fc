"""Micro-batching: concurrent requests that arrive within a few milliseconds of each other are
answered by one batched call.

One background worker takes the first waiting request, keeps collecting for `max_wait_ms`
(or until `max_batch` requests wait), groups what it has by key (requests with different keys,
e.g. another system prompt, cannot share a batch) and runs each group as one batch; every
caller waits on its own future. A batch that raises fails only its own requests.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from typing import Any

BatchFn = Callable[[Hashable, list[Any]], list[Any]]
_STOP = object()


class MicroBatcher:
    """A short queue in front of `run(key, items) -> results` (one result per item, in order)."""

    def __init__(self, run: BatchFn, max_batch: int = 8, max_wait_ms: float = 20.0) -> None:
        if max_batch < 1 or max_wait_ms < 0:
            raise ValueError("max_batch must be ≥ 1 and max_wait_ms ≥ 0")
        self._run = run
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000
        self._queue: queue.Queue = queue.Queue()
        self._closed = False
        self.batch_sizes: list[int] = []  # every batch run so far (evidence and metrics)
        self._worker = threading.Thread(target=self._loop, name="micro-batcher", daemon=True)
        self._worker.start()

    def submit(self, key: Hashable, item: Any) -> Future:
        """Queue one request; its future holds the result (or the batch's exception)."""
        if self._closed:
            raise RuntimeError("the micro-batcher is closed")
        future: Future = Future()
        self._queue.put((key, item, future))
        return future

    def __call__(self, key: Hashable, item: Any) -> Any:
        """Submit one request and wait for its result."""
        return self.submit(key, item).result()

    def close(self) -> None:
        """Finish what is queued, then stop the worker."""
        if not self._closed:
            self._closed = True
            self._queue.put(_STOP)
            self._worker.join(timeout=60)

    def _collect(self) -> tuple[list[tuple[Hashable, Any, Future]], bool]:
        first = self._queue.get()
        if first is _STOP:
            return [], True
        pending, stop = [first], False
        deadline = time.monotonic() + self.max_wait
        while len(pending) < self.max_batch:
            left = deadline - time.monotonic()
            try:
                entry = self._queue.get(timeout=left) if left > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if entry is _STOP:
                stop = True
                break
            pending.append(entry)
        return pending, stop

    def _loop(self) -> None:
        while True:
            pending, stop = self._collect()
            groups: dict[Hashable, list[tuple[Any, Future]]] = {}
            for key, item, future in pending:
                groups.setdefault(key, []).append((item, future))
            for key, entries in groups.items():
                self._run_group(key, entries)
            if stop:
                while not self._queue.empty():  # answer anything queued before close()
                    entry = self._queue.get_nowait()
                    if entry is not _STOP:
                        self._run_group(entry[0], [(entry[1], entry[2])])
                return

    def _run_group(self, key: Hashable, entries: list[tuple[Any, Future]]) -> None:
        live = [(item, f) for item, f in entries if f.set_running_or_notify_cancel()]
        if not live:
            return
        self.batch_sizes.append(len(live))
        try:
            results = self._run(key, [item for item, _ in live])
            if len(results) != len(live):
                raise RuntimeError(f"batch of {len(live)} returned {len(results)} results")
        except BaseException as exc:  # noqa: BLE001 - handed to every waiting caller
            for _, future in live:
                future.set_exception(exc)
            return
        for (_, future), result in zip(live, results, strict=True):
            future.set_result(result)
