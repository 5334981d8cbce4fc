"""Hybrid (BM25 + vector) retrieval from the live index, filtered by the caller's access groups."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import weaviate


@dataclass
class Passage:
    """A retrieved passage with its fused score."""

    passage_id: str
    doc_id: str
    title: str
    text: str
    source: str
    groups: list[str]
    score: float
    similarity: float = 0.0  # cosine of query and passage vectors (fusion scores are relative)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def hybrid_search(
    client: weaviate.WeaviateClient,
    alias: str,
    query: str,
    query_vector: list[float],
    top_k: int,
    alpha: float,
    groups: list[str],
) -> list[Passage]:
    """Relative-score fusion of BM25 and vector search; only passages sharing a group.

    The group filter is never dropped: missing, empty or malformed groups raise
    `AccessGroupsError` here too (callers resolve them first with `dualengine.resolve`).
    Fused scores are relative to the best hit, so each passage also carries its absolute
    cosine similarity to the query: the answer path's "nothing relevant" test uses that."""
    from weaviate.classes.query import Filter, HybridFusion, MetadataQuery

    from dualengine.resolve import validate_groups
    from tasks.weaviate_retry import read_with_retries

    allowed = validate_groups(groups)
    filters = Filter.by_property("groups").contains_any(allowed)
    collection = client.collections.get(alias)
    response = read_with_retries(  # a restarted cluster node may not know the schema yet
        lambda: collection.query.hybrid(
            query=query,
            vector=query_vector,
            alpha=alpha,
            limit=top_k,
            fusion_type=HybridFusion.RELATIVE_SCORE,
            filters=filters,
            return_metadata=MetadataQuery(score=True),
            include_vector=True,
        )
    )
    passages = []
    for obj in response.objects:
        props = obj.properties
        if not set(props.get("groups") or []) & set(allowed):
            continue  # the filter is Weaviate's job; a passage it let through is still dropped
        passages.append(
            Passage(
                passage_id=str(props["passage_id"]),
                doc_id=str(props["doc_id"]),
                title=str(props.get("title") or ""),
                text=str(props.get("text") or ""),
                source=str(props.get("source") or ""),
                groups=list(props.get("groups") or []),
                score=float(obj.metadata.score or 0.0),
                similarity=cosine(query_vector, obj.vector),
            )
        )
    return passages


def cosine(query_vector: list[float], stored: Any) -> float:
    """Cosine similarity with a returned vector (a list, or a dict of named vectors)."""
    if isinstance(stored, dict):
        stored = next(iter(stored.values()), None)
    if not stored:
        return 0.0
    dot = sum(a * b for a, b in zip(query_vector, stored, strict=False))
    norm = sum(a * a for a in query_vector) ** 0.5 * sum(b * b for b in stored) ** 0.5
    return round(dot / norm, 4) if norm else 0.0


def search_many(
    client: weaviate.WeaviateClient,
    alias: str,
    questions: list[str],
    top_k: int,
    alpha: float,
    groups: list[str],
    model: str | None = None,
    vectors: Any = None,
) -> list[list[Passage]]:
    """Each question's passages for a caller with these groups: embedded with `model`
    (unless their `vectors` are given), then `hybrid_search`."""
    if vectors is None:
        from tasks.embedding import embed_texts

        if model is None:
            raise ValueError("search_many needs the embedding model or the question vectors")
        vectors = embed_texts(model, questions, show=False) if questions else []
    return [
        hybrid_search(client, alias, q, [float(x) for x in v], top_k, alpha, groups)
        for q, v in zip(questions, vectors, strict=True)
    ]


def best_similarities(
    client: weaviate.WeaviateClient,
    alias: str,
    questions: list[str],
    vectors: Any,
    alpha: float,
    groups: list[str],
) -> list[float]:
    """Each question's best passage similarity (0.0 when nothing matches)."""
    hits = search_many(client, alias, questions, 1, alpha, groups, vectors=vectors)
    return [max((p.similarity for p in found), default=0.0) for found in hits]


def doc_ranking(passage_ids: list[str]) -> list[str]:
    """Document ids in first-seen order (a chunk id is `doc_id#n`)."""
    seen: dict[str, None] = {}
    for pid in passage_ids:
        seen.setdefault(pid.split("#", 1)[0], None)
    return list(seen)


def _mean_over_queries(
    retrieved: list[list[str]],
    relevant: list[list[str]],
    k: int,
    score: Callable[[list[str], set[str]], float],
) -> float:
    """Mean of `score(top-k documents, relevant documents)` over the queries (0.0 for none)."""
    if not retrieved:
        return 0.0
    pairs = zip(retrieved, relevant, strict=True)
    return sum(score(doc_ranking(got)[:k], set(want)) for got, want in pairs) / len(retrieved)


def recall_at_k(retrieved: list[list[str]], relevant: list[list[str]], k: int) -> float:
    """Mean share of each query's relevant documents found among its top-k documents."""

    def recall(top: list[str], wanted: set[str]) -> float:
        return len(set(top) & wanted) / max(len(wanted), 1)

    return _mean_over_queries(retrieved, relevant, k, recall)


def mrr_at_k(retrieved: list[list[str]], relevant: list[list[str]], k: int) -> float:
    """Mean reciprocal rank of the first relevant document within the top k."""

    def reciprocal_rank(top: list[str], wanted: set[str]) -> float:
        return next((1.0 / rank for rank, doc in enumerate(top, start=1) if doc in wanted), 0.0)

    return _mean_over_queries(retrieved, relevant, k, reciprocal_rank)


def ndcg_at_k(retrieved: list[list[str]], relevant: list[list[str]], k: int) -> float:
    """Binary-relevance nDCG over documents."""
    import math

    def ndcg(top: list[str], wanted: set[str]) -> float:
        hits = [rank for rank, doc in enumerate(top, start=1) if doc in wanted]
        dcg = sum(1.0 / math.log2(rank + 1) for rank in hits)
        ideal = sum(1.0 / math.log2(rank + 1) for rank in range(1, min(len(wanted), k) + 1))
        return dcg / ideal if ideal else 0.0

    return _mean_over_queries(retrieved, relevant, k, ndcg)


def retrieval_metrics(retrieved: list[list[str]], relevant: list[list[str]]) -> dict[str, float]:
    return {
        "recall_at_5": recall_at_k(retrieved, relevant, 5),
        "recall_at_10": recall_at_k(retrieved, relevant, 10),
        "mrr_at_10": mrr_at_k(retrieved, relevant, 10),
        "ndcg_at_10": ndcg_at_k(retrieved, relevant, 10),
    }
