"""Knowledge engine: chunk, embed and index a corpus into versioned Weaviate collections.

A collection's name carries its index version (corpus digest, embedding model, chunking); its
description holds the manifest. An alias points at the live version, so a rebuild goes live
only by an atomic alias move and can be rolled back. Incremental updates diff documents by
content hash and touch only new, changed and removed documents.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from tasks.chunking import split_text
from tasks.progress import progress

if TYPE_CHECKING:
    import weaviate

ID_NAMESPACE = uuid.UUID("6f1c6c2e-3b7a-5d4e-9a51-2f7d8e0c4b11")
Embed = Callable[[list[str]], Any]


@dataclass(frozen=True)
class Chunk:
    """One indexed passage: a piece of a document."""

    passage_id: str
    doc_id: str
    chunk_index: int
    title: str
    text: str
    source: str
    updated_at: str
    groups: list[str]
    content_hash: str
    doc_hash: str

    @property
    def object_id(self) -> str:
        """Deterministic Weaviate id: the same document, chunk and content give the same id."""
        key = f"{self.doc_id}:{self.chunk_index}:{self.content_hash}"
        return str(uuid.uuid5(ID_NAMESPACE, key))

    def embedding_text(self) -> str:
        return f"{self.title}\n{self.text}"


@dataclass
class Manifest:
    """What an index version is made of; stored as the collection's description."""

    alias: str
    collection: str
    index_version: str
    data_version: str
    embedding_model: str
    chunking: dict[str, Any]
    documents: int
    objects: int
    built_at: str
    updated_at: str
    corpus_hash: str
    retrieval: dict[str, float] = field(default_factory=dict)
    complete: bool = False  # written True last, once the build is whole; False = never a version

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class IncrementalPlan:
    """What an incremental re-index will do, by document id."""

    new: list[str]
    changed: list[str]
    removed: list[str]
    unchanged: int
    stale_object_ids: list[str]

    @property
    def touches_nothing(self) -> bool:
        return not (self.new or self.changed or self.removed)


class IndexingError(RuntimeError):
    """Objects Weaviate refused even after retries, or a count that does not add up."""


class IndexSafetyError(RuntimeError):
    """A re-index refused before writing anything: it would wipe or mass-delete the live index."""


MIXED = "mixed"  # the doc_hash of a document whose objects disagree (a crash mid-update)


def is_complete(manifest: dict[str, Any]) -> bool:
    """A version counts only once its build finished (manifests before the flag count)."""
    return bool(manifest.get("complete", True)) and bool(manifest)


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def document_hash(doc: dict[str, Any]) -> str:
    """Hash of everything indexed from a document (text and metadata, groups included)."""
    payload = {k: doc.get(k) for k in ("title", "text", "source", "updated_at", "groups")}
    return content_hash(json.dumps(payload, sort_keys=True, ensure_ascii=False))


def corpus_hash(doc_hashes: dict[str, str]) -> str:
    joined = "\n".join(f"{k}:{v}" for k, v in sorted(doc_hashes.items()))
    return content_hash(joined)


def chunk_document(doc: dict[str, Any], tokenizer: str, chunking: dict[str, Any]) -> list[Chunk]:
    """Split a document into token-bounded chunks; a one-chunk document keeps its id."""
    pieces = split_text(doc["text"], tokenizer, chunking["max_tokens"], chunking["overlap_tokens"])
    doc_hash = document_hash(doc)
    return [
        Chunk(
            passage_id=str(doc["id"]) if len(pieces) == 1 else f"{doc['id']}#{index}",
            doc_id=str(doc["id"]),
            chunk_index=index,
            title=str(doc.get("title") or ""),
            text=piece,
            source=str(doc.get("source") or ""),
            updated_at=str(doc.get("updated_at") or ""),
            groups=list(doc.get("groups") or []),
            content_hash=content_hash(piece),
            doc_hash=doc_hash,
        )
        for index, piece in enumerate(pieces)
    ]


def chunk_corpus(
    docs: list[dict[str, Any]], tokenizer: str, chunking: dict[str, Any]
) -> list[Chunk]:
    chunks: list[Chunk] = []
    for doc in docs:
        chunks.extend(chunk_document(doc, tokenizer, chunking))
    return chunks


def index_version(corpus_digest: str, embedding_model: str, chunking: dict[str, Any]) -> str:
    """Identity of an index: the same corpus, embedder and chunking give the same version."""
    payload = json.dumps(
        {"corpus": corpus_digest, "embedding": embedding_model, "chunking": chunking},
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:10]


def collection_name(prefix: str, version: str) -> str:
    return f"{prefix}_{version}"


def now_iso() -> str:
    return datetime.now(tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def plan_incremental(
    existing: dict[str, tuple[str, list[str]]],
    docs: list[dict[str, Any]],
    expected: dict[str, set[str]] | None = None,
) -> IncrementalPlan:
    """Diff live documents {doc_id: (doc_hash, object ids)} against the corpus (pure logic).

    A document is changed when its hash differs, when its objects disagree on the hash
    (MIXED), or, given `expected` {doc_id: object ids}, when its live objects are not exactly
    the expected ones (chunks missing or left over after an interrupted run)."""
    current = {str(d["id"]): document_hash(d) for d in docs}
    new = sorted(i for i in current if i not in existing)

    def differs(i: str) -> bool:
        if existing[i][0] != current[i]:
            return True
        return expected is not None and set(existing[i][1]) != expected.get(i, set())

    changed = sorted(i for i in current if i in existing and differs(i))
    removed = sorted(i for i in existing if i not in current)
    stale = [oid for i in changed + removed for oid in existing[i][1]]
    return IncrementalPlan(new, changed, removed, len(current) - len(new) - len(changed), stale)


def expected_object_ids(chunks: list[Chunk]) -> dict[str, set[str]]:
    """{doc_id: object ids} a corpus's chunks should have in the index."""
    found: dict[str, set[str]] = {}
    for chunk in chunks:
        found.setdefault(chunk.doc_id, set()).add(chunk.object_id)
    return found


def check_deletions(
    plan: IncrementalPlan,
    existing: dict[str, tuple[str, list[str]]],
    max_fraction: float,
    allow_mass_delete: bool = False,
) -> None:
    """Refuse (IndexSafetyError) a plan that removes more than `max_fraction` of the live
    objects with its removed documents, unless `allow_mass_delete`; never an empty corpus."""
    live = sum(len(ids) for _, ids in existing.values())
    doomed = sum(len(existing[i][1]) for i in plan.removed)
    kept = plan.unchanged + len(plan.changed) + len(plan.new)
    if live and kept == 0:
        raise IndexSafetyError(
            f"refused: the corpus has no valid documents, so this run would delete all {live} "
            "live objects; the live index is unchanged (check the quarantine report)"
        )
    share = doomed / live if live else 0.0
    if share > max_fraction and not allow_mass_delete:
        raise IndexSafetyError(
            f"refused: removing {len(plan.removed)} documents would delete {doomed} of {live} "
            f"live objects ({share:.0%} > index.max_delete_fraction {max_fraction:.0%}); "
            "nothing was written. Rerun with --allow-mass-delete if this is intended"
        )


# --- Weaviate operations -------------------------------------------------------------------


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
            lambda: collection.aggregate.over_all(total_count=True), delay_s=1.0
        ).total_count
    )


LEADER_WAIT_SECONDS = 60.0


def through_leader(call: Callable[[], Any], wait: float = LEADER_WAIT_SECONDS) -> Any:
    """A schema read or write (aliases, collection config): on a cluster these go through the
    Raft leader, so they fail for the seconds it takes to elect a new one after a node is
    lost. Retried on a server error or timeout until `wait` runs out; a 4xx is raised at once."""
    from weaviate.exceptions import UnexpectedStatusCodeError, WeaviateTimeoutError

    deadline = time.monotonic() + wait
    while True:
        try:
            return call()
        except (UnexpectedStatusCodeError, WeaviateTimeoutError) as exc:
            status = getattr(exc, "status_code", 500)
            if status < 500 or time.monotonic() > deadline:
                raise
            time.sleep(1.0)


def read_manifest(client: weaviate.WeaviateClient, collection: str) -> dict[str, Any]:
    config = through_leader(client.collections.get(collection).config.get)
    try:
        return json.loads(config.description or "{}")
    except json.JSONDecodeError:
        return {}


def write_manifest(client: weaviate.WeaviateClient, manifest: Manifest) -> None:
    handle = client.collections.get(manifest.collection)
    description = json.dumps(manifest.as_dict(), sort_keys=True)
    through_leader(lambda: handle.config.update(description=description))


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


def point_alias(client: weaviate.WeaviateClient, alias: str, collection: str) -> None:
    """Create the alias, or move it atomically to the given collection."""
    if client.alias.exists(alias_name=alias):
        client.alias.update(alias_name=alias, new_target_collection=collection)
    else:
        client.alias.create(alias_name=alias, target_collection=collection)


def alias_target(client: weaviate.WeaviateClient, alias: str) -> str | None:
    found = through_leader(lambda: client.alias.get(alias_name=alias))
    return found.collection if found else None


def live_collection(client: weaviate.WeaviateClient, alias: str) -> str:
    """The collection the alias serves, or LookupError saying how to build one."""
    live = alias_target(client, alias)
    if live is None:
        raise LookupError("no live index: run `dualengine reindex` first")
    return live


def _prefixed(client: weaviate.WeaviateClient, prefix: str) -> list[str]:
    return [n for n in client.collections.list_all(simple=True) if n.startswith(prefix + "_")]


def list_versions(client: weaviate.WeaviateClient, prefix: str) -> list[dict[str, Any]]:
    """Manifests of every finished version of an index, oldest build first (a build that
    did not finish is not a version)."""
    versions = []
    for name in _prefixed(client, prefix):
        manifest = read_manifest(client, name)
        if is_complete(manifest):
            manifest["collection"] = name
            versions.append(manifest)
    return sorted(versions, key=lambda m: m.get("built_at", ""))


def remove_unfinished(client: weaviate.WeaviateClient, alias: str, prefix: str) -> list[str]:
    """Delete the collections of builds that never finished (never the live one)."""
    live = alias_target(client, alias)
    doomed = [
        n
        for n in _prefixed(client, prefix)
        if n != live and not is_complete(read_manifest(client, n))
    ]
    for name in doomed:
        client.collections.delete(name)
    return doomed


def prune_versions(
    client: weaviate.WeaviateClient, alias: str, prefix: str, keep: int
) -> list[str]:
    """Delete the oldest versions beyond `keep`, never the live one."""
    live = alias_target(client, alias)
    remove_unfinished(client, alias, prefix)
    versions = [v["collection"] for v in list_versions(client, prefix)]
    removable = [v for v in versions if v != live]
    excess = max(0, len(versions) - keep)
    doomed = removable[:excess]
    for name in doomed:
        client.collections.delete(name)
    return doomed


def rollback(client: weaviate.WeaviateClient, alias: str, prefix: str) -> tuple[str, str]:
    """Point the alias at the version built before the live one; returns (from, to)."""
    live = alias_target(client, alias)
    versions = [v["collection"] for v in list_versions(client, prefix)]
    if live not in versions or versions.index(live) == 0:
        raise LookupError(f"no earlier version of {prefix} to roll back to (live: {live})")
    previous = versions[versions.index(live) - 1]
    point_alias(client, alias, previous)
    return live, previous


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
