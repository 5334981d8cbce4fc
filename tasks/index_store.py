"""Knowledge engine, writing: a version's collection (schema, replication), its objects
embedded and upserted in blocks, deletions by id, the live documents by content hash, and a
build or incremental update that is whole or leaves nothing behind (pure planning:
tasks/indexing.py; aliases and versions: tasks/index_versions.py)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from tasks.indexing import (
    MIXED,
    Chunk,
    IncrementalPlan,
    IndexingError,
    Manifest,
    chunk_corpus,
)
from tasks.progress import progress

if TYPE_CHECKING:
    import weaviate

Embed = Callable[[list[str]], Any]


def replication_factor(nodes: int) -> int:
    """Copies of every object: 3 on a cluster of 3 or more nodes, else one per node."""
    return max(1, min(3, nodes))


def replication_config(nodes: int):
    """Replication of a new collection on a cluster of `nodes` (None on one node). Async
    replication repairs a node that missed writes while it was down."""
    from weaviate.classes.config import Configure, ReplicationDeletionStrategy

    if nodes < 2:
        return None
    return Configure.replication(
        factor=replication_factor(nodes),
        deletion_strategy=ReplicationDeletionStrategy.TIME_BASED_RESOLUTION,
    )


def _create_collection(client: weaviate.WeaviateClient, name: str, manifest: Manifest):
    from weaviate.classes.config import Configure, DataType, Property, Tokenization

    def text(name: str, tokenization=Tokenization.WORD, searchable: bool = True) -> Property:
        return Property(
            name=name,
            data_type=DataType.TEXT,
            tokenization=tokenization,
            index_searchable=searchable,
        )

    return client.collections.create(
        name=name,
        description=json.dumps(manifest.as_dict(), sort_keys=True),
        vector_config=Configure.Vectors.self_provided(),
        replication_config=replication_config(len(client.cluster.nodes())),
        properties=[
            text("passage_id", Tokenization.FIELD, searchable=False),
            text("doc_id", Tokenization.FIELD, searchable=False),
            text("title"),
            text("text"),
            text("source", Tokenization.FIELD, searchable=False),
            text("updated_at", Tokenization.FIELD, searchable=False),
            Property(name="groups", data_type=DataType.TEXT_ARRAY, tokenization=Tokenization.FIELD),
            Property(name="chunk_index", data_type=DataType.INT),
            text("content_hash", Tokenization.FIELD, searchable=False),
            text("doc_hash", Tokenization.FIELD, searchable=False),
        ],
    )


def collection_count(client: weaviate.WeaviateClient, name: str) -> int:
    """Objects in a collection; asked again while a cluster is in a passing state (a lost
    replica not yet marked dead makes a count time out)."""
    from tasks.weaviate_retry import read_with_retries

    collection = client.collections.get(name)
    return int(
        read_with_retries(
            lambda: collection.aggregate.over_all(total_count=True), attempts=5, delay_s=1.0
        ).total_count
    )


def upsert_chunks(
    collection,
    chunks: list[Chunk],
    embed: Embed,
    block: int = 256,
    batch_size: int = 200,
    retries: int = 2,
) -> int:
    """Embed chunks block by block and stream them into Weaviate's batcher, which sends in the
    background while the next block embeds; failed objects are retried, then reported by id."""
    import numpy as np

    vectors: list[Any] = []
    with (
        progress("embedding + upserting", len(chunks), key="weaviate-upsert") as bar,
        collection.batch.fixed_size(batch_size=batch_size) as batch,
    ):
        for start in range(0, len(chunks), block):
            part = chunks[start : start + block]
            block_vectors = np.asarray(embed([c.embedding_text() for c in part]), dtype="float32")
            vectors.extend(block_vectors)
            for chunk, vector in zip(part, block_vectors, strict=True):
                batch.add_object(
                    properties=asdict(chunk), uuid=chunk.object_id, vector=vector.tolist()
                )
            bar.advance(len(part))
    position = {c.object_id: i for i, c in enumerate(chunks)}
    failures = [(str(f.object_.uuid), f.message) for f in collection.batch.failed_objects]
    for _attempt in range(retries):
        if not failures:
            return len(chunks)
        with collection.batch.fixed_size(batch_size=batch_size) as batch:
            for object_id, _ in failures:
                i = position[object_id]
                batch.add_object(
                    properties=asdict(chunks[i]), uuid=object_id, vector=vectors[i].tolist()
                )
        failures = [(str(f.object_.uuid), f.message) for f in collection.batch.failed_objects]
    if failures:
        named = [f"{chunks[position[o]].passage_id}: {m}" for o, m in failures[:10]]
        raise IndexingError(f"{len(failures)} objects failed after {retries} retries: {named}")
    return len(chunks)


def delete_objects(collection, object_ids: list[str], batch: int = 500) -> int:
    """Delete objects by id; returns how many Weaviate deleted."""
    from weaviate.classes.query import Filter

    deleted = 0
    for start in range(0, len(object_ids), batch):
        part = object_ids[start : start + batch]
        result = collection.data.delete_many(where=Filter.by_id().contains_any(part))
        deleted += int(result.successful)
        if result.failed:
            raise IndexingError(f"{result.failed} deletions failed in {collection.name}")
    return deleted


def live_documents(collection) -> dict[str, tuple[str, list[str]]]:
    """{doc_id: (doc_hash, [object ids])} of everything in a collection; a document whose
    objects carry different hashes (half-updated by a crash) gets the hash MIXED."""
    hashes: dict[str, set[str]] = {}
    ids: dict[str, list[str]] = {}
    for obj in collection.iterator(return_properties=["doc_id", "doc_hash"]):
        doc_id = str(obj.properties["doc_id"])
        hashes.setdefault(doc_id, set()).add(str(obj.properties.get("doc_hash") or ""))
        ids.setdefault(doc_id, []).append(str(obj.uuid))
    return {
        doc_id: (next(iter(found)) if len(found) == 1 else MIXED, ids[doc_id])
        for doc_id, found in hashes.items()
    }


def build_collection(
    client: weaviate.WeaviateClient,
    manifest: Manifest,
    chunks: list[Chunk],
    embed: Embed,
) -> Manifest:
    """Fill a new collection completely or delete it: a half-built version never survives."""
    if client.collections.exists(manifest.collection):
        client.collections.delete(manifest.collection)
    collection = _create_collection(client, manifest.collection, manifest)
    try:
        upsert_chunks(collection, chunks, embed)
        count = collection_count(client, manifest.collection)
        if count != len(chunks):
            raise IndexingError(
                f"{manifest.collection} holds {count} objects, expected {len(chunks)}"
            )
    except BaseException:
        client.collections.delete(manifest.collection)
        raise
    return manifest


def apply_incremental(
    client: weaviate.WeaviateClient,
    collection_name: str,
    plan: IncrementalPlan,
    docs: list[dict[str, Any]],
    tokenizer: str,
    chunking: dict[str, Any],
    embed: Embed,
) -> tuple[int, int]:
    """Upsert chunks of new and changed documents first, then delete their stale objects."""
    if plan.touches_nothing:
        return 0, 0
    collection = client.collections.get(collection_name)
    wanted = set(plan.new) | set(plan.changed)
    chunks = chunk_corpus([d for d in docs if str(d["id"]) in wanted], tokenizer, chunking)
    upserted = 0
    if chunks:
        upserted = upsert_chunks(collection, chunks, embed)
    keep = {c.object_id for c in chunks}
    deleted = delete_objects(collection, [o for o in plan.stale_object_ids if o not in keep])
    return upserted, deleted
