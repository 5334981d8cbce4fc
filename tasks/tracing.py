"""MLflow traces of answers: one trace per answer, one span per step, never a failed answer.

    tracer = AnswerTracer()
    with tracer.answer(question, groups, caller) as scope:
        with scope.span("retrieval", "RETRIEVER", {"query": question}) as span:
            span.set_outputs([...])
    scope.trace_id   # None when MLflow was not reachable (nothing was traced)

Traces go to the experiment `dualengine-answers` on the tracking server of the environment
(`MLFLOW_TRACKING_URI`, set by `dualengine.endpoints.export_endpoints`). Before tracing, the
server's `/health` is probed (short timeout, result kept for `probe_every_s` seconds); when it
does not answer, the answer is given untraced and its `trace_id` is None. Spans are exported in
the background (MLflow's async trace logging), so a slow server never slows an answer; every
call into MLflow here is guarded, so a failing one only loses the trace.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

TRACE_EXPERIMENT = "dualengine-answers"
_log = logging.getLogger(__name__)


class NullSpan:
    """Stands in for a span when nothing is traced (`recording` False: skip building values)."""

    recording = False

    def set_inputs(self, inputs: Any) -> None:
        pass

    def set_outputs(self, outputs: Any) -> None:
        pass

    def set_attributes(self, attributes: dict[str, Any]) -> None:
        pass


class SafeSpan(NullSpan):
    """An MLflow span whose setters never raise."""

    recording = True

    def __init__(self, span: Any) -> None:
        self._span = span

    def set_inputs(self, inputs: Any) -> None:
        _guard(self._span.set_inputs, inputs)

    def set_outputs(self, outputs: Any) -> None:
        _guard(self._span.set_outputs, outputs)

    def set_attributes(self, attributes: dict[str, Any]) -> None:
        _guard(self._span.set_attributes, attributes)


def _guard(call, *args: Any) -> Any:
    try:
        return call(*args)
    except Exception:  # tracing must never fail an answer
        _log.debug("trace call failed", exc_info=True)
        return None


class TraceScope:
    """The trace of one answer: its id (None when untraced) and a factory of child spans."""

    def __init__(self, trace_id: str | None) -> None:
        self.trace_id = trace_id

    @contextmanager
    def span(self, name: str, span_type: str = "UNKNOWN", inputs: Any = None) -> Iterator[NullSpan]:
        if self.trace_id is None:
            yield NullSpan()
            return
        import mlflow

        with mlflow.start_span(name, span_type=span_type) as span:
            safe = SafeSpan(span)
            if inputs is not None:
                safe.set_inputs(inputs)
            yield safe


def tracking_reachable(uri: str, timeout_s: float) -> bool:
    """Whether an HTTP tracking server answers `/health` (any non-5xx reply: an auth-protected
    server still counts); non-HTTP stores (file, sqlite) count as reachable."""
    if not uri.startswith(("http://", "https://")):
        return True
    import httpx

    try:
        return httpx.get(uri.rstrip("/") + "/health", timeout=timeout_s).status_code < 500
    except httpx.HTTPError:
        return False


class AnswerTracer:
    """Opens a trace per answer while the tracking server is reachable."""

    def __init__(
        self,
        experiment: str = TRACE_EXPERIMENT,
        enabled: bool = True,
        probe_every_s: float = 30.0,
        probe_timeout_s: float = 0.5,
    ) -> None:
        self.experiment = experiment
        self.enabled = enabled
        self.probe_every_s = probe_every_s
        self.probe_timeout_s = probe_timeout_s
        self._lock = threading.Lock()
        self._checked_at = -1e18
        self._checked_uri: str | None = None
        self._experiment_id: str | None = None
        self._reachable = False

    def destination(self) -> str | None:
        """The experiment id to trace into, or None (tracing off or server unreachable)."""
        if not self.enabled:
            return None
        import mlflow

        uri = mlflow.get_tracking_uri()
        with self._lock:
            fresh = time.monotonic() - self._checked_at < self.probe_every_s
            if fresh and uri == self._checked_uri:
                return self._experiment_id if self._reachable else None
            self._checked_at, self._checked_uri = time.monotonic(), uri
            self._reachable = tracking_reachable(uri, self.probe_timeout_s)
            if self._reachable and self._experiment_id is None:
                self._experiment_id = _guard(_experiment_id, self.experiment)
            return self._experiment_id if self._reachable else None

    @contextmanager
    def answer(self, inputs: dict[str, Any], attributes: dict[str, Any]) -> Iterator[TraceScope]:
        """The root span `answer` (or an untraced scope); the caller sets its outputs through
        `scope.root`."""
        experiment_id = self.destination()
        if experiment_id is None:
            scope = TraceScope(None)
            scope.root = NullSpan()  # type: ignore[attr-defined]
            yield scope
            return
        from mlflow.entities.trace_location import MlflowExperimentLocation

        import mlflow

        with mlflow.start_span(
            "answer",
            span_type="CHAIN",
            trace_destination=MlflowExperimentLocation(experiment_id),
        ) as root:
            trace_id = getattr(root, "trace_id", None)
            scope = TraceScope(trace_id if _real_trace_id(trace_id) else None)
            scope.root = SafeSpan(root) if scope.trace_id else NullSpan()  # type: ignore[attr-defined]
            scope.root.set_inputs(inputs)
            scope.root.set_attributes(attributes)
            yield scope

    def flush(self) -> None:
        """Wait for the traces still being exported (call before the process exits)."""
        if self._experiment_id is None:
            return
        import mlflow

        _guard(mlflow.flush_trace_async_logging)


def _real_trace_id(trace_id: Any) -> bool:
    """A no-op span (tracing disabled or sampled out) carries no usable id."""
    return isinstance(trace_id, str) and trace_id.startswith("tr-")


def _experiment_id(name: str) -> str:
    from mlflow import MlflowClient

    client = MlflowClient()
    found = client.get_experiment_by_name(name)
    return found.experiment_id if found else client.create_experiment(name)


def tracing_enabled_by_env() -> bool:
    """`DUALENGINE_TRACING=0` turns answer tracing off (benchmarks compare both)."""
    return os.environ.get("DUALENGINE_TRACING", "1").lower() not in {"0", "false", "no", "off"}
