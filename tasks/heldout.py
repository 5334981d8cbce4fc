"""Held-out items: one builder for the promotion gate, `evaluate` and the monitor's golden F1.

Every item carries three contexts in the training shape (the same number of whole chunks):
`retrieved` (the top retrieved chunks), `oracle` (the gold chunk shuffled among retrieved chunks
of other documents: what the model sees when retrieval works) and `missing` (retrieved chunks
of other documents only: the right answer is a refusal). Comparing retrieved against oracle
separates the engines: a gap means retrieval missed the gold chunk, a low oracle score means
the generator fails even when handed it.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Any

from tasks.evaluation import normalize_answer
from tasks.grounding import content_words


def doc_of(passage_id: str) -> str:
    """The document id of a chunk id (`doc#3` → `doc`; a one-chunk document keeps its id)."""
    return str(passage_id).split("#", 1)[0]


def gold_passage(chunks: list[dict[str, Any]], answer: str) -> dict[str, Any]:
    """The chunk of the gold document holding the answer: the first with the answer verbatim
    (normalised), else the one with most of the answer's content words (long-form answers)."""
    if not chunks:
        raise ValueError("the gold document has no chunks")
    wanted = normalize_answer(answer)
    for chunk in chunks:
        if wanted and wanted in normalize_answer(chunk["text"]):
            return _plain(chunk)
    words = set(content_words(answer))
    return _plain(max(chunks, key=lambda c: len(words & set(content_words(c["text"])))))


def _plain(passage: dict[str, Any]) -> dict[str, Any]:
    return {
        "passage_id": str(passage["passage_id"]),
        "title": str(passage.get("title") or ""),
        "text": str(passage["text"]),
    }


def recall_of(ranked_ids: Iterable[str], relevant: list[str], k: int) -> float:
    """Share of the relevant documents among the first k distinct documents retrieved."""
    docs: list[str] = []
    for passage_id in ranked_ids:
        doc = doc_of(passage_id)
        if doc not in docs:
            docs.append(doc)
    top = set(docs[:k])
    return len(top & set(relevant)) / len(relevant) if relevant else 0.0


def heldout_item(
    item: dict[str, Any],
    hits: list[dict[str, Any]],
    gold: dict[str, Any],
    passages: int,
    k: int,
    seed: int,
) -> dict[str, Any]:
    """An evaluation item with its `retrieved`, `oracle` and `missing` contexts.

    `hits` are the question's ranked retrieved chunks (at least k + passages, so that enough
    chunks of other documents remain); `gold` is the gold chunk (see `gold_passage`). The
    oracle's position is shuffled with a generator seeded by `seed` and the item id."""
    relevant = [str(i) for i in item["relevant_ids"]]
    if not relevant:
        raise ValueError(f"held-out item {item.get('id')!r} has no relevant_ids")
    oracle_doc = relevant[0]
    others = [_plain(h) for h in hits if doc_of(h["passage_id"]) != oracle_doc]
    oracle = [*others[: max(0, passages - 1)], _plain(gold)]
    random.Random(f"{seed}:{item.get('id', item['question'])}").shuffle(oracle)
    return item | {
        "oracle_id": oracle_doc,
        "gold_passage_id": str(gold["passage_id"]),
        "retrieved_ids": [str(h["passage_id"]) for h in hits[:k]],
        "retrieved": [_plain(h) for h in hits[:passages]],
        "oracle": oracle,
        "missing": others[:passages],
        "recall": recall_of((h["passage_id"] for h in hits), relevant, k),
    }


def oracle_position(item: dict[str, Any]) -> int:
    """1-based position of the gold chunk in the item's oracle context."""
    ids = [p["passage_id"] for p in item["oracle"]]
    return 1 + ids.index(item["gold_passage_id"])
