"""Fixtures of the behavioural model tests: held-out questions with passages from the bundled
XQuAD sample, and SmolLM2-135M-Instruct (the real base model) loaded once per module.

The passages are built without services: every corpus document is chunked as the index chunks
it (MiniLM tokens, params.yaml `chunking`), distractors are ranked by the content words they
share with the question (a lexical stand-in for the hybrid search) and never contain the gold
answer, and `tasks.heldout.heldout_item` makes the `oracle` (gold chunk among distractors) and
`missing` (distractors only) contexts, as the gate and `evaluate` do.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import pytest

from tasks.data import read_jsonl

DATA = Path(__file__).resolve().parents[2] / "data" / "prepared" / "xquad"
SAMPLE = 40  # held-out questions drawn with the training seed ...
QUESTIONS = 16  # ... of which the ones with the shortest prompts are asked (CPU budget)


def chunked_corpus(tokenizer: str, chunking) -> dict[str, list[dict[str, Any]]]:
    """Every XQuAD document's chunks (`doc#i` ids as the index names them), sized by
    params.yaml `chunking` (dualengine.config.ChunkingSection)."""
    from tasks.chunking import split_text

    out = {}
    for doc in read_jsonl(DATA / "corpus.jsonl"):
        parts = split_text(doc["text"], tokenizer, chunking.max_tokens, chunking.overlap_tokens)
        out[str(doc["id"])] = [
            {"passage_id": f"{doc['id']}#{n}", "title": doc["title"], "text": text}
            for n, text in enumerate(parts)
        ]
    return out


def lexical_hits(
    question: str, answer: str, gold_doc: str, chunks: list[dict[str, Any]], depth: int
) -> list[dict[str, Any]]:
    """Chunks ranked by content words shared with the question; chunks of other documents
    that hold the answer are left out (a `missing` context must really lack it)."""
    from tasks.evaluation import normalize_answer
    from tasks.grounding import content_words
    from tasks.heldout import doc_of

    wanted, needle = set(content_words(question)), normalize_answer(answer)
    ranked = sorted(chunks, key=lambda c: -len(wanted & set(content_words(c["text"]))))
    return [
        c
        for c in ranked
        if doc_of(c["passage_id"]) == gold_doc or needle not in normalize_answer(c["text"])
    ][:depth]


def heldout_sample(settings) -> list[dict[str, Any]]:
    """The asked held-out questions (never trained on: tasks/heldout.py's split) with their
    `oracle` and `missing` contexts of `retrieval.context_passages` whole chunks."""
    from dualengine.models import embedding_model_path
    from tasks.chunking import tokenizer_json
    from tasks.evaluation import normalize_answer
    from tasks.heldout import gold_passage, heldout_item

    config = settings.config()
    seed, k = config.training.seed, config.retrieval.top_k
    passages = config.retrieval.context_passages
    corpus = chunked_corpus(tokenizer_json(embedding_model_path(settings)), config.chunking)
    everything = [c for chunks in corpus.values() for c in chunks]
    rows = random.Random(seed).sample(read_jsonl(DATA / "eval.jsonl"), SAMPLE)
    items = []
    for row in rows:
        gold_doc = str(row["relevant_ids"][0])
        gold = gold_passage(corpus[gold_doc], row["answer"])
        if normalize_answer(row["answer"]) not in normalize_answer(gold["text"]):
            continue  # the oracle must really hold the answer
        hits = lexical_hits(row["question"], row["answer"], gold_doc, everything, k + passages)
        items.append(heldout_item(row, hits, gold, passages, k, seed))
    items.sort(key=lambda i: sum(len(p["text"]) for p in i["oracle"]))
    return items[:QUESTIONS]


@pytest.fixture(scope="module")
def heldout(settings) -> list[dict[str, Any]]:
    return heldout_sample(settings)


@pytest.fixture(scope="module")
def profile(settings):
    """The `default` training profile: SmolLM2 on CPU (answering window, max_new_tokens and
    the answer path's system prompt)."""
    return settings.config().training_profile("default")


@pytest.fixture(scope="module")
def system_prompt(profile) -> str:
    return " ".join(profile.system_prompt.split())


@pytest.fixture(scope="module")
def smollm2(settings, profile):
    """SmolLM2-135M-Instruct as the answer path loads it (tasks.generation.load_generator),
    on one CPU thread; `DUALENGINE_BEHAVIOUR_ADAPTER` adds a fine-tuned adapter folder."""
    import torch

    from dualengine.models import ensure_smollm2
    from tasks.generation import load_generator

    torch.set_num_threads(int(os.environ.get("DUALENGINE_TORCH_THREADS") or 1))
    adapter = os.environ.get("DUALENGINE_BEHAVIOUR_ADAPTER") or None
    return load_generator(str(ensure_smollm2(settings)), adapter, profile.context_tokens)
