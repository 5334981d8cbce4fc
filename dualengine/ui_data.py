"""What the web app shows besides answers: one passage (with the caller's groups), recent
answers from the query log, monitor history from MLflow, and links into the MLflow UI."""

from __future__ import annotations

from typing import Any

from dualengine.settings import Settings

MONITOR_EXPERIMENT = "dualengine-monitoring"


def fetch_passage(client, alias: str, passage_id: str, groups: list[str]) -> dict | None:
    """The passage if one of these groups may read it, else None (no hint that it exists)."""
    from weaviate.classes.query import Filter

    if not groups:
        return None
    found = client.collections.get(alias).query.fetch_objects(
        filters=Filter.by_property("passage_id").equal(passage_id)
        & Filter.by_property("groups").contains_any(groups),
        limit=1,
    )
    if not found.objects:
        return None
    props = found.objects[0].properties
    return {
        "passage_id": passage_id,
        "title": str(props.get("title") or ""),
        "text": str(props.get("text") or ""),
        "source": str(props.get("source") or ""),
    }


def recent_answers(settings: Settings, limit: int) -> list[dict[str, Any]]:
    """The newest logged answers, newest first (empty without a query log)."""
    from tasks.query_log import QueryLog

    log = QueryLog(settings.query_log)
    try:
        rows = log.read(limit=limit)
    finally:
        log.close()
    return list(reversed(rows))


def monitor_history(runs: int) -> dict[str, Any]:
    """Both engines' latest status and each signal's values over the last monitor runs."""
    from mlflow import MlflowClient

    client = MlflowClient()
    experiment = client.get_experiment_by_name(MONITOR_EXPERIMENT)
    if experiment is None:
        return {"runs": 0}
    found = client.search_runs(
        [experiment.experiment_id], order_by=["attributes.start_time DESC"], max_results=runs
    )
    if not found:
        return {"runs": 0}
    ordered = list(reversed(found))  # oldest first
    names = sorted({k for r in ordered for k in r.data.metrics})
    latest = found[0]
    return {
        "runs": len(found),
        "latest_time": latest.info.run_name,
        "status": {
            e: latest.data.tags.get(f"status.{e}", "unknown") for e in ("knowledge", "behaviour")
        },
        "signals": [
            {
                "engine": name.split(".", 1)[0],
                "name": name.split(".", 1)[1],
                "values": [r.data.metrics.get(name) for r in ordered],
                "latest": next(
                    (r.data.metrics[name] for r in found if name in r.data.metrics), 0.0
                ),
            }
            for name in names
            if "." in name
        ],
    }


def trace_link():
    """A function: trace id → its page in the MLflow UI (the answers' experiment)."""
    import mlflow
    from mlflow import MlflowClient
    from tasks.tracing import TRACE_EXPERIMENT

    base = mlflow.get_tracking_uri().rstrip("/")
    try:
        experiment = MlflowClient().get_experiment_by_name(TRACE_EXPERIMENT)
    except Exception:  # noqa: BLE001 - the page still lists answers without links
        experiment = None
    if experiment is None or not base.startswith("http"):
        return lambda trace_id: "#"
    eid = experiment.experiment_id
    return lambda trace_id: f"{base}/#/experiments/{eid}/traces?selectedEvaluationId={trace_id}"
