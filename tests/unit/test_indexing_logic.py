"""Chunking, deterministic ids and index versions (pure logic)."""

import pytest

from tasks.indexing import chunk_document, index_version

DOC = {
    "id": "doc-1",
    "title": "T",
    "text": " ".join(f"w{i}" for i in range(50)),
    "source": "s",
    "updated_at": "2024-01-01",
    "groups": ["g"],
}


def test_short_document_is_one_chunk_with_the_document_id():
    chunks = chunk_document(DOC, max_words=100, overlap_words=10)
    assert [c.passage_id for c in chunks] == ["doc-1"]


def test_windows_overlap_and_cover_every_word():
    chunks = chunk_document(DOC, max_words=20, overlap_words=5)
    assert [c.passage_id for c in chunks] == ["doc-1#0", "doc-1#1", "doc-1#2"]
    assert chunks[1].text.split()[0] == "w15"
    covered = {w for c in chunks for w in c.text.split()}
    assert covered == set(DOC["text"].split())


def test_object_ids_are_deterministic_and_content_sensitive():
    first = [c.object_id for c in chunk_document(DOC, 20, 5)]
    assert first == [c.object_id for c in chunk_document(DOC, 20, 5)]
    changed = chunk_document(DOC | {"text": DOC["text"] + " extra"}, 20, 5)
    assert changed[-1].object_id != first[-1]
    assert len(set(first)) == len(first)


def test_overlap_must_be_smaller_than_window():
    with pytest.raises(ValueError):
        chunk_document(DOC, 10, 10)


def test_index_version_identity():
    base = index_version("abc", "mini", {"max_words": 1, "overlap_words": 0})
    assert base == index_version("abc", "mini", {"overlap_words": 0, "max_words": 1})
    assert base != index_version("abd", "mini", {"max_words": 1, "overlap_words": 0})
    assert base != index_version("abc", "other", {"max_words": 1, "overlap_words": 0})
