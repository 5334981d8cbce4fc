"""The hybrid answer: retrieve from the live index, generate with the champion adapter, cite."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from tasks.evaluation import normalize_answer
from tasks.prompting import clean_answer
from tasks.raft import split_citation
from tasks.retrieval import Passage


@dataclass
class Citation:
    passage_id: str
    title: str
    source: str
    score: float
    supports_answer: bool
    cited_by_model: bool = False


@dataclass
class HybridAnswer:
    question: str
    answer: str
    citations: list[Citation]
    model_version: str | None
    index_collection: str | None
    timings_ms: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def supports(passage_text: str, answer: str) -> bool:
    """True when the passage contains the answer's normalised words in order."""
    needle = normalize_answer(answer)
    return bool(needle) and needle in normalize_answer(passage_text)


def cite(passages: list[Passage], answer: str, cited: int | None = None) -> list[Citation]:
    """The passages given to the model: the one it cited, then supporting ones, then the rest."""
    citations = [
        Citation(
            p.passage_id,
            p.title,
            p.source,
            round(p.score, 4),
            supports(p.text, answer),
            cited == number,
        )
        for number, p in enumerate(passages, start=1)
    ]
    return sorted(citations, key=lambda c: (not c.cited_by_model, not c.supports_answer))


def answer_question(
    client,
    generator,
    alias: str,
    embedding_model: str,
    question: str,
    params: dict[str, Any],
    system: str,
    max_new_tokens: int,
    groups: list[str] | None,
    model_version: str | None = None,
) -> HybridAnswer:
    """Retrieve (access-filtered) → prompt with passages → generate → answer with citations."""
    from tasks.embedding import embed_query
    from tasks.indexing import alias_target
    from tasks.retrieval import hybrid_search

    retrieval = params["retrieval"]
    t0 = time.perf_counter()
    vector = embed_query(embedding_model, question)
    passages = hybrid_search(
        client, alias, question, vector, retrieval["top_k"], retrieval["alpha"], groups
    )
    t1 = time.perf_counter()
    context = passages[: retrieval["context_passages"]]
    cited = None
    if not context:
        text = "I could not find this in the documents you can access."
    else:
        reply = generator.answer_batch(
            system, [question], [[p.as_dict() for p in context]], max_new_tokens, raw=True
        )[0]
        text, cited = split_citation(reply)
        text = clean_answer(text)
    t2 = time.perf_counter()
    return HybridAnswer(
        question=question,
        answer=text,
        citations=cite(context, text, cited if context else None),
        model_version=model_version,
        index_collection=alias_target(client, alias),
        timings_ms={
            "retrieval": round((t1 - t0) * 1000, 1),
            "generation": round((t2 - t1) * 1000, 1),
        },
    )
