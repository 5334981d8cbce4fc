"""Hybrid (BM25 + vector) retrieval from the live index, filtered by the caller's access groups."""

from __future__ import annotations

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

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def hybrid_search(
    client: weaviate.WeaviateClient,
    alias: str,
    query: str,
    query_vector: list[float],
    top_k: int,
    alpha: float,
    groups: list[str] | None = None,
) -> list[Passage]:
    """Relative-score fusion of BM25 and vector search; only passages sharing a group."""
    from weaviate.classes.query import Filter, HybridFusion, MetadataQuery

    filters = Filter.by_property("groups").contains_any(groups) if groups else None
    response = client.collections.get(alias).query.hybrid(
        query=query,
        vector=query_vector,
        alpha=alpha,
        limit=top_k,
        fusion_type=HybridFusion.RELATIVE_SCORE,
        filters=filters,
        return_metadata=MetadataQuery(score=True),
    )
    passages = []
    for obj in response.objects:
        props = obj.properties
        passages.append(
            Passage(
                passage_id=str(props["passage_id"]),
                doc_id=str(props["doc_id"]),
                title=str(props.get("title") or ""),
                text=str(props.get("text") or ""),
                source=str(props.get("source") or ""),
                groups=list(props.get("groups") or []),
                score=float(obj.metadata.score or 0.0),
            )
        )
    return passages


def retrieve_many(
    client: weaviate.WeaviateClient,
    alias: str,
    queries: list[str],
    vectors,
    top_k: int,
    alpha: float,
    groups: list[str] | None = None,
) -> list[list[Passage]]:
    return [
        hybrid_search(client, alias, q, [float(x) for x in v], top_k, alpha, groups)
        for q, v in zip(queries, vectors, strict=True)
    ]


def recall_at_k(retrieved: list[list[str]], relevant: list[list[str]], k: int) -> float:
    """Share of queries with at least one relevant passage (or its chunk) in the top k."""
    if not retrieved:
        return 0.0
    hits = 0
    for got, want in zip(retrieved, relevant, strict=True):
        doc_ids = {pid.split("#", 1)[0] for pid in got[:k]}
        if doc_ids & set(want):
            hits += 1
    return hits / len(retrieved)
