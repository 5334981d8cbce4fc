"""Knowledge engine: chunk, embed and index a corpus into a versioned Weaviate collection.

The collection name carries the index version (corpus data version, embedding model, chunking
parameters); an alias points at the live one, so a new version goes live only by an alias move.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from dualengine.progress import progress

if TYPE_CHECKING:
    import weaviate

ID_NAMESPACE = uuid.UUID("6f1c6c2e-3b7a-5d4e-9a51-2f7d8e0c4b11")


@dataclass(frozen=True)
class Chunk:
    """One indexed passage: a window of a document."""

    passage_id: str
    doc_id: str
    chunk_index: int
    title: str
    text: str
    source: str
    updated_at: str
    groups: list[str]
    content_hash: str

    @property
    def object_id(self) -> str:
        """Deterministic Weaviate id: the same document, chunk and content give the same id."""
        return str(
            uuid.uuid5(ID_NAMESPACE, f"{self.doc_id}:{self.chunk_index}:{self.content_hash}")
        )


@dataclass
class IndexInfo:
    """What a build produced (also the manifest stored on the collection)."""

    alias: str
    collection: str
    index_version: str
    data_version: str
    embedding_model: str
    chunking: dict[str, Any]
    documents: int
    objects: int
    reused: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def chunk_document(doc: dict[str, Any], max_words: int, overlap_words: int) -> list[Chunk]:
    """Split a document into overlapping word windows; short documents stay whole."""
    if overlap_words >= max_words:
        raise ValueError("chunking.overlap_words must be smaller than chunking.max_words")
    words = doc["text"].split()
    step = max_words - overlap_words
    starts = [0] if len(words) <= max_words else list(range(0, len(words) - overlap_words, step))
    chunks = []
    for index, start in enumerate(starts):
        text = " ".join(words[start : start + max_words])
        passage_id = doc["id"] if len(starts) == 1 else f"{doc['id']}#{index}"
        chunks.append(
            Chunk(
                passage_id=passage_id,
                doc_id=str(doc["id"]),
                chunk_index=index,
                title=str(doc.get("title") or ""),
                text=text,
                source=str(doc.get("source") or ""),
                updated_at=str(doc.get("updated_at") or ""),
                groups=list(doc.get("groups") or []),
                content_hash=content_hash(text),
            )
        )
    return chunks


def chunk_corpus(docs: list[dict[str, Any]], chunking: dict[str, Any]) -> list[Chunk]:
    chunks: list[Chunk] = []
    for doc in docs:
        chunks.extend(chunk_document(doc, chunking["max_words"], chunking["overlap_words"]))
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


def _create_collection(client: weaviate.WeaviateClient, name: str, manifest: dict[str, Any]):
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
        description=json.dumps(manifest, sort_keys=True),
        vector_config=Configure.Vectors.self_provided(),
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
        ],
    )


def collection_count(client: weaviate.WeaviateClient, name: str) -> int:
    return int(client.collections.get(name).aggregate.over_all(total_count=True).total_count)


class IndexingError(RuntimeError):
    """Objects Weaviate refused even after retries; the message lists them."""


def upsert_chunks(
    collection, chunks: list[Chunk], vectors, batch_size: int = 200, retries: int = 2
):
    """Insert chunks with their vectors; failed objects are retried, then reported."""
    pending = list(range(len(chunks)))
    failures: list[str] = []
    for _attempt in range(retries + 1):
        failures = []
        failed_ids: set[str] = set()
        with (
            progress("upserting to Weaviate", len(pending), key="weaviate-upsert") as bar,
            collection.batch.fixed_size(batch_size=batch_size) as batch,
        ):
            for position in pending:
                chunk = chunks[position]
                properties = asdict(chunk)
                batch.add_object(
                    properties=properties,
                    uuid=chunk.object_id,
                    vector=[float(x) for x in vectors[position]],
                )
                bar.advance()
        for failed in collection.batch.failed_objects:
            failed_ids.add(str(failed.object_.uuid))
            failures.append(f"{failed.object_.properties.get('passage_id')}: {failed.message}")
        pending = [p for p in pending if chunks[p].object_id in failed_ids]
        if not pending:
            return
    raise IndexingError(f"{len(failures)} objects failed after {retries} retries: {failures[:10]}")


def point_alias(client: weaviate.WeaviateClient, alias: str, collection: str) -> None:
    """Create the alias, or move it atomically to the given collection."""
    if client.alias.exists(alias_name=alias):
        client.alias.update(alias_name=alias, new_target_collection=collection)
    else:
        client.alias.create(alias_name=alias, target_collection=collection)


def alias_target(client: weaviate.WeaviateClient, alias: str) -> str | None:
    found = client.alias.get(alias_name=alias)
    return found.collection if found else None


def read_manifest(client: weaviate.WeaviateClient, collection: str) -> dict[str, Any]:
    config = client.collections.get(collection).config.get()
    try:
        return json.loads(config.description or "{}")
    except json.JSONDecodeError:
        return {}


def build_index(
    client: weaviate.WeaviateClient,
    docs: list[dict[str, Any]],
    corpus_digest: str,
    data_version: str,
    embedding_model: str,
    params: dict[str, Any],
    embedding_id: str | None = None,
) -> IndexInfo:
    """Build (or reuse) the collection for this index version and point the alias at it."""
    from tasks.embedding import embed_texts

    chunking = dict(params["chunking"])
    alias = params["index"]["alias"]
    embedding_id = embedding_id or embedding_model
    version = index_version(corpus_digest, embedding_id, chunking)
    name = collection_name(params["index"]["collection_prefix"], version)
    chunks = chunk_corpus(docs, chunking)
    info = IndexInfo(
        alias=alias,
        collection=name,
        index_version=version,
        data_version=data_version,
        embedding_model=embedding_id,
        chunking=chunking,
        documents=len(docs),
        objects=len(chunks),
        reused=False,
    )
    if client.collections.exists(name):
        if collection_count(client, name) == len(chunks):
            info.reused = True
            point_alias(client, alias, name)
            return info
        client.collections.delete(name)  # a half-built version never goes live
    collection = _create_collection(client, name, info.as_dict())
    try:
        vectors = embed_texts(
            embedding_model,
            [f"{c.title}\n{c.text}" for c in chunks],
            batch_size=params["embedding"]["batch_size"],
        )
        upsert_chunks(collection, chunks, vectors)
        count = collection_count(client, name)
        if count != len(chunks):
            raise IndexingError(f"collection {name} holds {count} objects, expected {len(chunks)}")
    except BaseException:
        client.collections.delete(name)
        raise
    point_alias(client, alias, name)
    return info
