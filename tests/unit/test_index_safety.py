"""Index safety as pure logic: mass-delete refusal, hashing by all objects of a document,
unfinished builds, the lock's refusal (no servers)."""

from types import SimpleNamespace

import pytest

from dualengine.models import embedding_model_path
from tasks.chunking import tokenizer_json
from tasks.index_store import live_documents
from tasks.indexing import (
    MIXED,
    IndexSafetyError,
    check_deletions,
    chunk_corpus,
    document_hash,
    expected_object_ids,
    is_complete,
    plan_incremental,
)

CHUNKING = {"max_tokens": 40, "overlap_tokens": 8}


def doc(i, text=None):
    return {
        "id": f"doc-{i}",
        "title": "T",
        "text": text
        or " ".join(f"Sentence {j} of document {i} on topic {j % 5}." for j in range(20)),
        "source": "s",
        "updated_at": "2024-01-01",
        "groups": ["g"],
    }


def live(docs, tokenizer):
    """{doc_id: (hash, ids)} as a finished index of `docs` would have it."""
    ids = expected_object_ids(chunk_corpus(docs, tokenizer, CHUNKING))
    return {str(d["id"]): (document_hash(d), sorted(ids[str(d["id"])])) for d in docs}


@pytest.fixture(scope="module")
def tokenizer(settings):
    return tokenizer_json(embedding_model_path(settings))


class FakeCollection:
    """Just the iterator live_documents reads (the real one is exercised in tests/faults)."""

    def __init__(self, rows):
        self.rows = rows

    def iterator(self, return_properties):
        for uuid, doc_id, doc_hash in self.rows:
            yield SimpleNamespace(uuid=uuid, properties={"doc_id": doc_id, "doc_hash": doc_hash})


def test_a_document_whose_objects_disagree_is_mixed_whatever_comes_first():
    for rows in (
        [("a", "d1", "new"), ("b", "d1", "old"), ("c", "d2", "h2")],
        [("b", "d1", "old"), ("a", "d1", "new"), ("c", "d2", "h2")],
    ):
        found = live_documents(FakeCollection(rows))
        assert found["d1"] == (MIXED, [rows[0][0], rows[1][0]])
        assert found["d2"] == ("h2", ["c"])


def test_half_updated_document_is_changed_and_its_orphans_go(tokenizer):
    old, new = doc(1), doc(1, "A completely different text about rivers and boats.")
    old_ids = live([old], tokenizer)["doc-1"][1]
    new_ids = sorted(expected_object_ids(chunk_corpus([new], tokenizer, CHUNKING))["doc-1"])
    # crash after the upsert of the new chunks, before the old ones were deleted
    rows = [(i, "doc-1", document_hash(new)) for i in new_ids]
    rows += [(i, "doc-1", document_hash(old)) for i in old_ids]
    existing = live_documents(FakeCollection(rows))
    plan = plan_incremental(existing, [new])
    assert plan.changed == ["doc-1"]
    assert set(plan.stale_object_ids) - set(new_ids) == set(old_ids)


def test_missing_or_extra_chunks_make_a_document_changed(tokenizer):
    docs = [doc(1), doc(2)]
    expected = expected_object_ids(chunk_corpus(docs, tokenizer, CHUNKING))
    assert len(expected["doc-1"]) > 2
    whole = live(docs, tokenizer)
    assert plan_incremental(whole, docs, expected).touches_nothing
    partial = dict(whole, **{"doc-1": (whole["doc-1"][0], whole["doc-1"][1][:-1])})
    assert plan_incremental(partial, docs, expected).changed == ["doc-1"]
    extra = dict(whole, **{"doc-2": (whole["doc-2"][0], whole["doc-2"][1] + ["orphan"])})
    plan = plan_incremental(extra, docs, expected)
    assert plan.changed == ["doc-2"] and "orphan" in plan.stale_object_ids


def test_mass_delete_is_refused_unless_allowed(tokenizer):
    docs = [doc(i) for i in range(8)]
    existing = live(docs, tokenizer)
    kept = docs[:5]  # 3 of 8 equal documents gone: 37% of the objects
    plan = plan_incremental(existing, kept)
    with pytest.raises(IndexSafetyError, match="max_delete_fraction 25%.*--allow-mass-delete"):
        check_deletions(plan, existing, 0.25)
    check_deletions(plan, existing, 0.25, allow_mass_delete=True)
    check_deletions(plan, existing, 0.5)
    check_deletions(plan_incremental(existing, docs[:7]), existing, 0.25)  # 1 of 8: fine


@pytest.mark.parametrize("allow", [False, True])
def test_an_empty_corpus_never_wipes_the_index(tokenizer, allow):
    existing = live([doc(1), doc(2)], tokenizer)
    with pytest.raises(IndexSafetyError, match="no valid documents"):
        check_deletions(plan_incremental(existing, []), existing, 1.0, allow)


def test_empty_corpus_is_refused_before_anything_is_read():
    from tasks.knowledge import reindex

    class Untouchable:
        def __getattr__(self, name):
            raise AssertionError(f"the client was used: {name}")

    with pytest.raises(IndexSafetyError, match="empty or all quarantined"):
        reindex(Untouchable(), [], "v", None, {}, full=True)


def test_only_finished_builds_are_versions():
    assert is_complete({"collection": "x", "complete": True})
    assert not is_complete({"collection": "x", "complete": False})
    assert not is_complete({})  # no manifest at all
    assert is_complete({"collection": "x"})  # built before the flag existed
