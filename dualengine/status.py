"""`dualengine status`: services, champion and challenger, the served hybrid model, the live
index and the query log."""

from __future__ import annotations

from typing import Any

from dualengine import endpoints, services
from dualengine.settings import Settings

METRIC_PREFIXES = ("eval_", "retrieval_")


def _model_versions(settings: Settings) -> dict[str, Any]:
    from tasks import registry

    name = settings.config().registry.model_name
    found: dict[str, Any] = {"name": name}
    for alias in (registry.CHAMPION, registry.CHALLENGER):
        version = registry.version_by_alias(name, alias)
        if version is None:
            found[alias] = None
            continue
        tags = version.tags or {}
        found[alias] = {
            "version": str(version.version),
            "run_id": version.run_id,
            "data_version": tags.get("data_version"),
            "index_version": tags.get("index_version"),
            "metrics": {k: float(v) for k, v in tags.items() if k.startswith(METRIC_PREFIXES)},
        }
    return found


def _served_hybrid(settings: Settings) -> dict[str, Any] | None:
    from tasks import registry

    version = registry.version_by_alias(
        settings.config().registry.hybrid_model_name, registry.CHAMPION
    )
    if version is None:
        return None
    tags = version.tags or {}
    return {
        "version": str(version.version),
        "generator_version": tags.get("generator_version"),
        "index_alias": tags.get("index_alias"),
    }


def _query_log(settings: Settings) -> dict[str, Any]:
    from tasks.query_log import QueryLog

    log = QueryLog(settings.query_log)
    try:
        return {"url": settings.query_log, "queries": log.count()}
    finally:
        log.close()


def _live_index(settings: Settings) -> dict[str, Any]:
    from dualengine.resolve import index_alias, live_index
    from dualengine.weaviate_client import weaviate_client
    from tasks.index_store import collection_count
    from tasks.index_versions import read_manifest

    alias = index_alias(settings)
    with weaviate_client(settings) as client:
        target = live_index(client, alias, required=False)
        if target is None:
            return {"alias": alias, "collection": None, "objects": 0}
        manifest = read_manifest(client, target)
        return {
            "alias": alias,
            "collection": target,
            "objects": collection_count(client, target),
            "data_version": manifest.get("data_version"),
            "index_version": manifest.get("index_version"),
            "embedding_model": manifest.get("embedding_model"),
        }


def system_status(settings: Settings) -> dict[str, Any]:
    """Everything a platform engineer checks first, as one dict."""
    rows = services.status(settings)
    healthy = {r.name: r.healthy for r in rows}
    endpoints.export_endpoints(settings)
    report: dict[str, Any] = {"services": services.status_dicts(rows), "models": {}, "index": {}}
    if healthy["mlflow"]:
        report["models"] = _model_versions(settings)
        report["models"]["served_hybrid"] = _served_hybrid(settings)
    else:
        report["models"] = {"error": "MLflow is not reachable"}
    if healthy["weaviate"]:
        report["index"] = _live_index(settings)
    else:
        report["index"] = {"error": "Weaviate is not reachable"}
    report["query_log"] = _query_log(settings)
    return report
