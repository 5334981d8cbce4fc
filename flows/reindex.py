"""Knowledge-engine flows: re-index (incremental or blue-green), evaluate retrieval, rollback."""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.artifacts import create_markdown_artifact

from dualengine.settings import Settings
from flows.locks import REINDEX_LIMIT, exclusive
from flows.steps import reindex as ks


@flow(name="reindex", log_prints=True)
def reindex_flow(
    full: bool = False,
    corpus: list[str] | None = None,
    evaluate: bool = True,
    allow_mass_delete: bool = False,
    lock_wait: float | None = None,
) -> dict[str, Any]:
    """Bring the live index up to date: only changed documents, or a gated full rebuild.
    One re-index at a time (limit `dualengine-reindex`; a second waits `lock_wait` seconds,
    default params `index.lock_wait_seconds`, then is refused); a run that would wipe or
    mass-delete the live index is refused unless `allow_mass_delete`."""
    settings = Settings()
    wait = settings.config().index.lock_wait_seconds if lock_wait is None else lock_wait
    with exclusive(REINDEX_LIMIT, wait, "re-index"):
        corpora = ks.resolve_corpora(settings, corpus)
        docs, quarantined = ks.validate_corpus(settings, corpora)
        return ks.reindex_knowledge(
            settings, docs, corpora, full, quarantined, evaluate, allow_mass_delete
        )


@flow(name="evaluate-retrieval", log_prints=True)
def evaluate_retrieval_flow(limit: int | None = None) -> dict[str, Any]:
    """Recall@k, MRR and nDCG@10 of BM25-only, vector-only and hybrid on the sample sets."""
    return ks.evaluate_retrieval_step(Settings(), limit)


@flow(name="rollback-index", log_prints=True)
def rollback_index_flow() -> dict[str, str]:
    """Point the index alias back at the version built before the live one."""
    from dualengine.resolve import index_alias
    from dualengine.weaviate_client import weaviate_client
    from tasks.index_versions import rollback

    settings = Settings()
    alias = index_alias(settings)
    with weaviate_client(settings) as client:
        before, after = rollback(client, alias, settings.config().index.collection_prefix)
    create_markdown_artifact(
        key="index-rollback",
        markdown=f"## Index rollback\n\nAlias `{alias}`: `{before}` → `{after}`",
    )
    return {"alias": alias, "from": before, "to": after}
