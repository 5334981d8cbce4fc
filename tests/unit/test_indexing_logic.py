"""Chunking, deterministic ids, incremental plans and index versions (no servers)."""

import pytest

from dualengine.models import embedding_model_path
from tasks.chunking import split_text, tokenizer_json
from tasks.indexing import chunk_document, document_hash, index_version, plan_incremental

CHUNKING = {"max_tokens": 40, "overlap_tokens": 8}


@pytest.fixture(scope="module")
def tokenizer(settings):
    return tokenizer_json(embedding_model_path(settings))


def doc(i, text=None, **extra):
    return {
        "id": f"doc-{i}",
        "title": "T",
        "text": text or f"word{i} " * 10,
        "source": "s",
        "updated_at": "2024-01-01",
        "groups": ["g"],
    } | extra


def test_short_document_is_one_chunk_with_the_document_id(tokenizer):
    chunks = chunk_document(doc(1), tokenizer, CHUNKING)
    assert [c.passage_id for c in chunks] == ["doc-1"]


def test_chunks_respect_the_token_budget(tokenizer):
    from tokenizers import Tokenizer

    text = " ".join(f"Sentence number {i} talks about topic {i % 7}." for i in range(60))
    chunks = chunk_document(doc(2, text), tokenizer, CHUNKING)
    assert len(chunks) > 3
    counter = Tokenizer.from_str(tokenizer)
    assert all(len(counter.encode(c.text, add_special_tokens=False)) <= 40 for c in chunks)
    assert [c.passage_id for c in chunks][:2] == ["doc-2#0", "doc-2#1"]


def test_table_rows_and_headings_stay_whole(tokenizer):
    rows = "\n".join(f"Revenue line {i} | {i * 1000:,} | {i * 1100:,}" for i in range(12))
    text = f"# Income statement\n\n{rows}\n\n# Notes\n\n" + "The notes say little. " * 20
    pieces = split_text(text, tokenizer, 40, 8)
    for i in range(12):
        row = f"Revenue line {i} | {i * 1000:,} | {i * 1100:,}"
        assert any(row in p for p in pieces), row
    assert all(p.startswith("# ") for p in pieces)  # every chunk carries its section heading


def test_object_ids_are_deterministic_and_content_sensitive(tokenizer):
    text = " ".join(f"Sentence {i} here." for i in range(60))
    first = [c.object_id for c in chunk_document(doc(3, text), tokenizer, CHUNKING)]
    assert first == [c.object_id for c in chunk_document(doc(3, text), tokenizer, CHUNKING)]
    changed = chunk_document(doc(3, text + " Extra."), tokenizer, CHUNKING)
    assert changed[-1].object_id != first[-1]
    assert len(set(first)) == len(first)


def test_overlap_must_be_smaller_than_window(tokenizer):
    with pytest.raises(ValueError):
        split_text("x", tokenizer, 10, 10)


def test_document_hash_sees_metadata_and_text():
    assert document_hash(doc(1)) == document_hash(doc(1))
    assert document_hash(doc(1)) != document_hash(doc(1, groups=["other"]))
    assert document_hash(doc(1)) != document_hash(doc(1, text="new text"))


def test_incremental_plan():
    live = {
        "doc-1": (document_hash(doc(1)), ["u1"]),
        "doc-2": (document_hash(doc(2)), ["u2a", "u2b"]),
        "doc-3": (document_hash(doc(3)), ["u3"]),
    }
    plan = plan_incremental(live, [doc(1), doc(2, text="changed"), doc(4)])
    assert (plan.new, plan.changed, plan.removed, plan.unchanged) == (
        ["doc-4"],
        ["doc-2"],
        ["doc-3"],
        1,
    )
    assert sorted(plan.stale_object_ids) == ["u2a", "u2b", "u3"]
    assert plan_incremental(live, [doc(1), doc(2), doc(3)]).touches_nothing


def test_index_version_identity():
    base = index_version("abc", "mini", {"max_tokens": 1, "overlap_tokens": 0})
    assert base == index_version("abc", "mini", {"overlap_tokens": 0, "max_tokens": 1})
    assert base != index_version("abd", "mini", {"max_tokens": 1, "overlap_tokens": 0})
    assert base != index_version("abc", "other", {"max_tokens": 1, "overlap_tokens": 0})
