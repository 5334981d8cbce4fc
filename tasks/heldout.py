"""Held-out items: one builder for the promotion gate, `evaluate` and the monitor's golden F1.

Every item carries three contexts in the training shape (the same number of whole chunks):
`retrieved` (the top retrieved chunks), `oracle` (retrieval made perfect: the retrieved chunks
when the gold chunk is among them, else the gold chunk put at a seeded random position among
the top retrieved ones) and `missing` (retrieved chunks of other documents only: the right
answer is a refusal). Comparing retrieved against oracle separates the engines: a gap means
retrieval missed the gold chunk, a low oracle score means the generator fails even when handed
it. Where retrieval found the gold chunk the two prompts are the same, so scorers answer them
once (`same_context`).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
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
    chunks of other documents remain); `gold` is the gold chunk (see `gold_passage`). When
    the retrieved chunks lack it, the oracle is the top `passages - 1` of them with the gold
    chunk inserted at a position drawn by a generator seeded by `seed` and the item id."""
    relevant = [str(i) for i in item["relevant_ids"]]
    if not relevant:
        raise ValueError(f"held-out item {item.get('id')!r} has no relevant_ids")
    oracle_doc = relevant[0]
    others = [_plain(h) for h in hits if doc_of(h["passage_id"]) != oracle_doc]
    retrieved = [_plain(h) for h in hits[:passages]]
    gold_chunk = _plain(gold)
    if gold_chunk["passage_id"] in [p["passage_id"] for p in retrieved]:
        oracle = list(retrieved)
    else:
        oracle = retrieved[: max(0, passages - 1)]
        at = random.Random(f"{seed}:{item.get('id', item['question'])}").randint(0, len(oracle))
        oracle.insert(at, gold_chunk)
    return item | {
        "oracle_id": oracle_doc,
        "gold_passage_id": str(gold["passage_id"]),
        "retrieved_ids": [str(h["passage_id"]) for h in hits[:k]],
        "retrieved": retrieved,
        "oracle": oracle,
        "missing": others[:passages],
        "recall": recall_of((h["passage_id"] for h in hits), relevant, k),
    }


def same_context(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> bool:
    """Whether two contexts give the same prompt (the same chunks in the same order)."""
    return [(p["passage_id"], p["text"]) for p in a] == [(p["passage_id"], p["text"]) for p in b]


def reuse_same_contexts(
    contexts: list[list[dict[str, Any]]],
    known_contexts: list[list[dict[str, Any]]],
    known: list[Any],
    compute: Callable[[list[int]], list[Any]],
) -> list[Any]:
    """One value per context: the known value where the context equals the known one (the
    same prompt gives the same greedy answer), else `compute(rows)` for the rows that differ
    (called once, with an empty list when none do)."""
    rows = [
        r
        for r, (a, b) in enumerate(zip(contexts, known_contexts, strict=True))
        if not same_context(a, b)
    ]
    fresh = dict(zip(rows, compute(rows), strict=True))
    return [fresh[r] if r in fresh else known[r] for r in range(len(contexts))]


def oracle_position(item: dict[str, Any]) -> int:
    """1-based position of the gold chunk in the item's oracle context."""
    ids = [p["passage_id"] for p in item["oracle"]]
    return 1 + ids.index(item["gold_passage_id"])
