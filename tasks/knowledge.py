"""Knowledge-engine jobs: incremental re-index, blue-green rebuild with a gate, evaluation."""

from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from tasks import index_store, index_versions, indexing
from tasks.chunking import chunking_identity, tokenizer_json

if TYPE_CHECKING:
    import weaviate


@dataclass
class EmbeddingSpec:
    """The embedding model to load (path or id) and its stable identity."""

    model: str
    identity: str
    batch_size: int = 32

    def embed(self, texts: list[str]):
        from tasks.embedding import embed_texts

        return embed_texts(self.model, texts, batch_size=self.batch_size, show=False)


@dataclass
class ReindexResult:
    """What a re-index did, for the artifact, MLflow and the CLI."""

    mode: str  # incremental | rebuilt | reused | refused
    alias: str
    live_collection: str | None
    collection: str
    data_version: str
    documents: int
    objects: int
    new_documents: list[str] = field(default_factory=list)
    changed_documents: list[str] = field(default_factory=list)
    removed_documents: list[str] = field(default_factory=list)
    upserted_objects: int = 0
    deleted_objects: int = 0
    gate: dict[str, Any] = field(default_factory=dict)
    pruned: list[str] = field(default_factory=list)
    seconds: float = 0.0
    manifest: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def sample_questions(items: list[dict[str, Any]], limit: int, seed: int) -> list[dict[str, Any]]:
    if limit <= 0 or len(items) <= limit:
        return list(items)
    return random.Random(seed).sample(items, limit)


def evaluate_collection(
    client: weaviate.WeaviateClient,
    target: str,
    eval_sets: dict[str, list[dict[str, Any]]],
    embedding: EmbeddingSpec,
    alpha_modes: dict[str, float],
    groups: list[str],
    depth: int = 100,
) -> dict[str, dict[str, dict[str, float]]]:
    """{eval set: {mode: recall@5, recall@10, MRR@10, nDCG@10}} at document level, searching
    as a caller with these groups (an operator's evaluation names them too)."""
    from tasks.embedding import embed_texts
    from tasks.retrieval import retrieval_metrics, search_many

    report: dict[str, dict[str, dict[str, float]]] = {}
    for name, items in eval_sets.items():
        questions = [i["question"] for i in items]
        vectors = embed_texts(embedding.model, questions, show=False)
        relevant = [list(i["relevant_ids"]) for i in items]
        report[name] = {}
        for mode, alpha in alpha_modes.items():
            hits = search_many(client, target, questions, depth, alpha, groups, vectors=vectors)
            ranked = [[p.passage_id for p in found] for found in hits]
            report[name][mode] = retrieval_metrics(ranked, relevant)
    return report


def evaluation_groups(params: dict[str, Any], docs: list[dict[str, Any]]) -> list[str]:
    """The groups the index gate searches with: `retrieval.evaluation_groups` and every group
    of the documents being indexed (the gate measures the index, not a caller's view)."""
    configured = (params.get("retrieval") or {}).get("evaluation_groups") or []
    found = {g for d in docs for g in (d.get("groups") or []) if isinstance(g, str)}
    return sorted(set(configured) | found)


def gate_score(report: dict[str, dict[str, dict[str, float]]], metric: str) -> float:
    """Mean of the hybrid metric over the evaluation sets."""
    values = [modes["hybrid"][metric] for modes in report.values()]
    return sum(values) / len(values) if values else 0.0


def reindex(
    client: weaviate.WeaviateClient,
    docs: list[dict[str, Any]],
    data_version: str,
    embedding: EmbeddingSpec,
    params: dict[str, Any],
    full: bool = False,
    eval_sets: dict[str, list[dict[str, Any]]] | None = None,
    allow_mass_delete: bool = False,
) -> ReindexResult:
    """Bring the live index up to date with `docs`.

    Incremental (default, when the live index has the same embedding model and chunking):
    only new, changed and removed documents are touched; nothing changed touches nothing.
    Full (`full=True`, or no compatible live index): build a new collection version, gate it
    on recall against the live one, move the alias only if it passes, prune old versions.

    Safety: an empty corpus is refused in both modes, and an incremental run whose removed
    documents hold more than `index.max_delete_fraction` of the live objects is refused unless
    `allow_mass_delete` (IndexSafetyError, nothing written). Builds that never finished are
    deleted first.
    """
    started = time.perf_counter()
    if not docs:
        raise indexing.IndexSafetyError(
            "refused: the corpus has no valid documents (empty or all quarantined); "
            "the live index is unchanged"
        )
    index_params = {
        **params["index"],
        "alpha": params["retrieval"]["alpha"],
        "evaluation_groups": evaluation_groups(params, docs),
    }
    job = _Job(
        docs=docs,
        data_version=data_version,
        corpus=indexing.corpus_hash({str(d["id"]): indexing.document_hash(d) for d in docs}),
        tokenizer=tokenizer_json(embedding.model),
        chunking=chunking_identity(params["chunking"]),
        embedding=embedding,
        index=index_params,
    )
    live = index_versions.alias_target(client, index_params["alias"])
    index_versions.remove_unfinished(
        client, index_params["alias"], index_params["collection_prefix"]
    )
    live_manifest = index_versions.read_manifest(client, live) if live else {}
    compatible = (
        live_manifest.get("embedding_model") == embedding.identity
        and live_manifest.get("chunking") == job.chunking
    )
    if live and compatible and not full:
        result = _incremental(client, job, live, live_manifest, allow_mass_delete)
    else:
        result = _blue_green(client, job, live, eval_sets or {})
    result.seconds = round(time.perf_counter() - started, 2)
    return result


@dataclass
class _Job:
    """Everything one re-index works from."""

    docs: list[dict[str, Any]]
    data_version: str
    corpus: str
    tokenizer: str
    chunking: dict[str, Any]
    embedding: EmbeddingSpec
    index: dict[str, Any]


def _incremental(
    client, job: _Job, live: str, live_manifest: dict[str, Any], allow_mass_delete: bool
) -> ReindexResult:
    collection = client.collections.get(live)
    docs, data_version = job.docs, job.data_version
    existing = index_store.live_documents(collection)
    expected = indexing.expected_object_ids(
        indexing.chunk_corpus(docs, job.tokenizer, job.chunking)
    )
    plan = indexing.plan_incremental(existing, docs, expected)
    indexing.check_deletions(
        plan, existing, float(job.index.get("max_delete_fraction", 0.25)), allow_mass_delete
    )
    upserted, deleted = index_store.apply_incremental(
        client, live, plan, docs, job.tokenizer, job.chunking, job.embedding.embed
    )
    manifest = dict(live_manifest)
    if not plan.touches_nothing or manifest.get("data_version") != data_version:
        manifest.update(
            data_version=data_version,
            documents=len(docs),
            objects=index_store.collection_count(client, live),
            updated_at=indexing.now_iso(),
            corpus_hash=job.corpus,
            complete=True,
        )
        index_versions.write_manifest(client, indexing.Manifest(**manifest))
    return ReindexResult(
        mode="incremental",
        alias=manifest["alias"],
        live_collection=live,
        collection=live,
        data_version=data_version,
        documents=len(docs),
        objects=manifest["objects"],
        new_documents=plan.new,
        changed_documents=plan.changed,
        removed_documents=plan.removed,
        upserted_objects=upserted,
        deleted_objects=deleted,
        manifest=manifest,
    )


def _blue_green(client, job: _Job, live: str | None, eval_sets) -> ReindexResult:
    docs, data_version, corpus, chunking = job.docs, job.data_version, job.corpus, job.chunking
    embedding, index_params = job.embedding, job.index
    alias, prefix = index_params["alias"], index_params["collection_prefix"]
    version = indexing.index_version(corpus, embedding.identity, chunking)
    name = indexing.collection_name(prefix, version)
    chunks = indexing.chunk_corpus(docs, job.tokenizer, chunking)
    existing = index_versions.read_manifest(client, name) if client.collections.exists(name) else {}
    reusable = (
        indexing.is_complete(existing)
        and existing.get("corpus_hash") == corpus
        and index_store.collection_count(client, name) == len(chunks)
    )
    if name == live and not reusable:  # never rebuild the live collection in place
        name = f"{name}_{int(time.time())}"
        existing = {}
    stamp = indexing.now_iso()
    manifest = indexing.Manifest(
        alias=alias,
        collection=name,
        index_version=version,
        data_version=data_version,
        embedding_model=embedding.identity,
        chunking=chunking,
        documents=len(docs),
        objects=len(chunks),
        built_at=existing.get("built_at", stamp) if reusable else stamp,
        updated_at=stamp,
        corpus_hash=corpus,
    )
    if not reusable:
        index_store.build_collection(client, manifest, chunks, embedding.embed)
    gate: dict[str, Any] = {"passed": True, "reason": "no live index to compare with"}
    metric, margin = index_params["gate_metric"], float(index_params["gate_margin"])
    if eval_sets:
        modes = {"hybrid": float(index_params.get("alpha", 0.5))}
        groups = index_params["evaluation_groups"]
        new_report = evaluate_collection(client, name, eval_sets, embedding, modes, groups)
        new_score = gate_score(new_report, metric)
        manifest.retrieval = {f"{s}.{metric}": m["hybrid"][metric] for s, m in new_report.items()}
        gate = {
            "passed": True,
            "metric": metric,
            "candidate": new_score,
            "margin": margin,
            "reason": "no live index to compare with",
        }
        if live and live != name:
            live_score = gate_score(
                evaluate_collection(client, live, eval_sets, embedding, modes, groups), metric
            )
            passed = new_score >= live_score - margin
            gate |= {
                "live": live_score,
                "passed": passed,
                "reason": f"candidate {metric} {new_score:.4f} "
                f"{'>=' if passed else '<'} live {live_score:.4f} - {margin}",
            }
    manifest.complete = True  # written last: only now is this build a version
    index_versions.write_manifest(client, manifest)
    if gate["passed"]:
        index_versions.point_alias(client, alias, name)
        pruned = index_versions.prune_versions(
            client, alias, prefix, int(index_params["keep_versions"])
        )
        mode = "reused" if reusable else "rebuilt"
    else:
        pruned, mode = [], "refused"
    return ReindexResult(
        mode=mode,
        alias=alias,
        live_collection=index_versions.alias_target(client, alias),
        collection=name,
        data_version=data_version,
        documents=len(docs),
        objects=len(chunks),
        upserted_objects=0 if reusable else len(chunks),
        gate=gate,
        pruned=pruned,
        manifest=manifest.as_dict(),
    )
