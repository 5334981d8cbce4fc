"""The held-out items of the gate, `evaluate` and the monitor (one builder), and the question
search they share with the RAFT data: passages from the live index for a caller's groups."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dualengine.models import embedding_model_path
from dualengine.resolve import index_alias
from dualengine.settings import Settings
from dualengine.weaviate_client import weaviate_client
from tasks.data import DatasetPaths, read_jsonl


def search_questions(settings: Settings, questions: list[str], k: int, groups: list[str]):
    """Each question's top-k passages from the live index, for a caller with these groups."""
    from tasks.retrieval import search_many

    alpha = settings.config().retrieval.alpha
    with weaviate_client(settings) as client:
        return search_many(
            client,
            index_alias(settings),
            questions,
            k,
            alpha,
            groups,
            model=embedding_model_path(settings),
        )


def gold_chunker(settings: Settings, corpus: dict[str, dict[str, Any]]):
    """`gold(doc_id, answer)` → the chunk of that document holding the answer, chunked exactly
    as the index chunks it (same splitter, tokenizer and sizes, so the same passage ids)."""
    from tasks.chunking import tokenizer_json
    from tasks.heldout import gold_passage
    from tasks.indexing import chunk_document

    chunking = settings.config().chunking.model_dump()
    tokenizer = tokenizer_json(embedding_model_path(settings))
    cache: dict[str, list[dict[str, Any]]] = {}

    def gold(doc_id: str, answer: str) -> dict[str, Any]:
        if doc_id not in cache:
            cache[doc_id] = [
                {"passage_id": c.passage_id, "title": c.title, "text": c.text}
                for c in chunk_document(corpus[doc_id], tokenizer, chunking)
            ]
        return gold_passage(cache[doc_id], answer)

    return gold


def items_for(
    settings: Settings, rows: list[dict[str, Any]], groups: list[str] | None, gold
) -> list[dict[str, Any]]:
    """Held-out items (tasks.heldout) of these questions, retrieved for a caller with these
    groups; `gold` is a `gold_chunker`."""
    from tasks.heldout import heldout_item

    config = settings.config()
    k, n = config.retrieval.top_k, config.retrieval.context_passages
    seed = config.training.seed
    hits = search_questions(settings, [r["question"] for r in rows], k + n, groups)
    return [
        heldout_item(
            row,
            [p.as_dict() for p in found],
            gold(str(row["relevant_ids"][0]), row["answer"]),
            n,
            k,
            seed,
        )
        for row, found in zip(rows, hits, strict=True)
    ]


def heldout_items(
    settings: Settings,
    corpus_path: Path,
    eval_path: Path,
    limit: int,
    groups: list[str] | None,
    keep=None,
) -> list[dict[str, Any]]:
    """The one held-out item builder of the gate, `evaluate` and the monitor: sampled held-out
    questions with `retrieved`, `oracle` (gold chunk among retrieved chunks of other documents)
    and `missing` contexts, all whole chunks (tasks.heldout). `keep(rows)` narrows the
    questions first (e.g. to the filings never trained on)."""
    import random

    corpus = {str(d["id"]): d for d in read_jsonl(corpus_path)}
    rows = read_jsonl(eval_path)
    rows = keep(rows) if keep else rows
    seed = settings.config().training.seed
    rows = random.Random(seed).sample(rows, min(limit, len(rows)))
    return items_for(settings, rows, groups, gold_chunker(settings, corpus))


def gate_items(settings: Settings, paths: DatasetPaths, limit: int) -> list[dict[str, Any]]:
    """Held-out questions (a sample of `limit`, the training audience's groups) and every
    golden question grown from people's corrections whose document is in the corpus, all in
    the shared held-out shape (tasks.heldout). Golden questions are retrieved with their
    askers' groups."""
    from tasks.golden import GoldenSet

    groups = settings.config().training.raft.distractor_groups
    items = heldout_items(settings, paths.corpus, paths.eval, limit, groups)
    corpus = {str(d["id"]): d for d in read_jsonl(paths.corpus)}
    golden = [
        g | {"golden": True}
        for g in GoldenSet(settings.state).items()
        if g.get("relevant_ids") and g["relevant_ids"][0] in corpus
    ]
    gold = gold_chunker(settings, corpus)
    for groups in sorted({tuple(g["groups"]) for g in golden}):
        asked = [g for g in golden if tuple(g["groups"]) == groups]
        items += items_for(settings, asked, list(groups), gold)
    return items
