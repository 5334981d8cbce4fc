"""What each span of an answer's trace records (pure functions over the answer path's values)."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from tasks.prompting import messages_for

if TYPE_CHECKING:
    from tasks.hybrid import AnswerConfig, AnswerStyle, Citation, HybridAnswer, HybridEngine
    from tasks.retrieval import Passage
    from tasks.tracing import NullSpan

CHAT_USAGE = "mlflow.chat.tokenUsage"
TEXT_PREVIEW = 500  # characters of a passage kept in the retrieval span


def retrieval_inputs(question: str, groups: list[str] | None, config: AnswerConfig) -> dict:
    return {
        "query": question,
        "groups": sorted(groups or []),
        "top_k": config.top_k,
        "alpha": config.alpha,
        "index_alias": config.alias,
    }


def documents(passages: list[Passage]) -> list[dict[str, Any]]:
    """Hits in MLflow's retriever-document shape (`page_content`, `metadata`, `id`)."""
    return [
        {
            "id": p.passage_id,
            "page_content": p.text[:TEXT_PREVIEW],
            "metadata": {
                "doc_id": p.doc_id,
                "title": p.title,
                "source": p.source,
                "score": round(p.score, 4),
                "similarity": p.similarity,
            },
        }
        for p in passages
    ]


def record_retrieval(span: NullSpan, passages: list[Passage]) -> None:
    if span.recording:
        span.set_outputs(documents(passages))


def record_grounding(
    span: NullSpan,
    citations: list[Citation],
    faithfulness: float | None,
    conflict: dict[str, Any] | None,
) -> None:
    if span.recording:
        span.set_outputs(grounding_outputs(citations, faithfulness, conflict))


def record_answer(span: NullSpan, result: HybridAnswer) -> None:
    if span.recording:
        span.set_outputs(answer_outputs(result))


def record_prompt(
    span: NullSpan, style: AnswerStyle, question: str, context: list[Passage]
) -> None:
    """The chat messages the generator is given (before fitting to the token budget)."""
    if not span.recording:
        return
    span.set_inputs({"question": question, "passage_ids": [p.passage_id for p in context]})
    span.set_outputs(
        {"messages": messages_for(style.system_prompt, question, [p.as_dict() for p in context])}
    )


def record_generation(
    span: NullSpan, engine: HybridEngine, style: AnswerStyle, reply: str, usage: dict[str, int]
) -> None:
    """Model version (`base` where the style does not use the adapter), answer style, token
    counts (also as MLflow's `mlflow.chat.tokenUsage`, which the UI sums per trace) and the
    raw reply of one generate() call."""
    if not span.recording:
        return
    attributes: dict[str, Any] = {
        "model_version": str(engine.version_for(style)),
        "answer_style": style.name or "default",
        "max_new_tokens": style.max_new_tokens,
        **usage,
    }
    if usage:
        attributes[CHAT_USAGE] = {**usage, "total_tokens": sum(usage.values())}
    span.set_attributes(attributes)
    span.set_outputs({"reply": reply, **usage})


def grounding_outputs(
    citations: list[Citation], faithfulness: float | None, conflict: dict[str, Any] | None
) -> dict[str, Any]:
    return {
        "citations": [asdict(c) for c in citations],
        "faithfulness": faithfulness,
        "conflict": conflict,
    }


def answer_outputs(result: HybridAnswer) -> dict[str, Any]:
    return {
        "answer": result.answer,
        "answered": result.answered,
        "citations": [c.passage_id for c in result.citations],
        "model_version": result.model_version,
        "index_collection": result.index_collection,
        "timings_ms": result.timings_ms,
    }
