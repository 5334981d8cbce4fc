"""The `monitor` flow: tell which engine degraded, record it, and emit the repair events."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger

from dualengine.settings import Settings
from flows.steps import monitor as ms
from flows.steps.reindex import resolve_corpora
from tasks.monitoring import engine_status


@flow(name="monitor", log_prints=True, persist_result=True)
def monitor_flow(profile: str | None = None, emit: bool = True) -> dict[str, Any]:
    """Knowledge signals (staleness, golden recall, low-score share, query-vs-corpus distance)
    and behaviour signals (query drift vs training questions, golden oracle F1, conflict rate,
    negative feedback rate), each ok / warn / degraded; degraded engines emit
    `dualengine.<engine>.degraded`."""
    settings = Settings.for_profile(profile)
    queries = ms.read_queries(settings)
    corpora = resolve_corpora(settings, None)
    knowledge, context = ms.knowledge_signals(settings, corpora, queries)
    context["golden_set"] = ms.golden_set_info(settings)
    behaviour = ms.behaviour_signals(settings, queries)
    signals = knowledge + behaviour
    statuses = {e: engine_status(signals, e) for e in ("knowledge", "behaviour")}
    events = ms.emit_events(settings, signals, context) if emit else {}
    run_id = ms.record_monitor(settings, signals, statuses, events)
    get_run_logger().info(
        "knowledge %s, behaviour %s", statuses["knowledge"], statuses["behaviour"]
    )
    return {
        "status": statuses,
        "signals": [s.as_dict() for s in signals],
        "events": events,
        "queries": len(queries),
        "mlflow_run_id": run_id,
        **context,
    }
