"""Knowledge engine, planning (pure, no Weaviate): chunks, content hashes, index versions,
manifests, the incremental plan and the mass-delete refusal. Writing a collection:
tasks/index_store.py; aliases and versions: tasks/index_versions.py.

A collection's name carries its index version (corpus digest, embedding model, chunking); its
description holds the manifest. An alias points at the live version, so a rebuild goes live
only by an atomic alias move and can be rolled back. Incremental updates diff documents by
content hash and touch only new, changed and removed documents.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from tasks.chunking import split_text

ID_NAMESPACE = uuid.UUID("6f1c6c2e-3b7a-5d4e-9a51-2f7d8e0c4b11")


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
