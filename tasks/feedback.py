"""People's ratings of answers: MLflow assessments on the answer's trace, the query log, and
corrections as candidate golden questions.

    dualengine feedback TRACE_ID --bad --correction "1066"

A rating is a `user_rating` feedback (True = good) from a HUMAN source on the trace; a
correction is also an `expected_answer` expectation and, with the passages the answer was
given, a candidate for the golden set (tasks/golden.py). Wrong input raises FeedbackError, an
id that is not an answer's trace raises LookupError (the CLI exits 2 for both).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

RATING = "user_rating"
EXPECTED = "expected_answer"
TRACE_ID = re.compile(r"^tr-[0-9a-f]{32}$")


class FeedbackError(ValueError):
    """The rating request itself is wrong (flags, correction, id format)."""


@dataclass
class Rating:
    trace_id: str
    good: bool
    correction: str | None
    user: str

    @property
    def label(self) -> str:
        return "good" if self.good else "bad"


def parse_rating(
    trace_id: str,
    good: bool,
    bad: bool,
    correction: str | None,
    user: str,
    max_chars: int,
) -> Rating:
    """Exactly one of good / bad; a correction only with bad, non-empty and within max_chars."""
    trace_id = (trace_id or "").strip()
    if not TRACE_ID.match(trace_id):
        raise FeedbackError(
            f"{trace_id!r} is not an answer's trace id (tr- and 32 hex digits, as in "
            "`dualengine ask --json` → trace_id)"
        )
    if good == bad:
        raise FeedbackError("give exactly one of --good or --bad")
    if correction is not None:
        correction = correction.strip()
        if good:
            raise FeedbackError("--correction goes with --bad (a good answer needs none)")
        if not correction:
            raise FeedbackError("--correction is empty")
        if len(correction) > max_chars:
            raise FeedbackError(
                f"--correction has {len(correction)} characters; at most {max_chars} "
                "(params.yaml validation.answer_max_chars)"
            )
    if not user or not user.strip():
        raise FeedbackError("the rating needs a user (source id)")
    return Rating(trace_id, good, correction, user.strip())


def answer_trace(trace_id: str):
    """The answer's trace from MLflow; LookupError when there is none or it is not an answer."""
    from mlflow.exceptions import MlflowException

    from mlflow import MlflowClient

    try:
        trace = MlflowClient().get_trace(trace_id, display=False)
    except MlflowException as exc:
        raise LookupError(f"trace {trace_id} not found in MLflow") from exc
    if trace is None or not any(s.name == "answer" for s in trace.data.spans):
        raise LookupError(f"trace {trace_id} is not the trace of an answer")
    return trace


def trace_facts(trace) -> dict[str, Any]:
    """Question, groups and the retrieved passages (id and text preview) of an answer trace."""
    spans = {s.name: s for s in trace.data.spans}
    root = spans["answer"]
    inputs = root.inputs or {}
    retrieved = spans.get("retrieval")
    docs = (retrieved.outputs if retrieved is not None else None) or []
    context = len(((spans.get("prompt") and spans["prompt"].inputs) or {}).get("passage_ids", []))
    passages = [
        {
            "passage_id": d["id"],
            "doc_id": (d.get("metadata") or {}).get("doc_id"),
            "text": d.get("page_content", ""),
        }
        for d in docs
    ]
    return {
        "question": inputs.get("question", ""),
        "groups": list(inputs.get("groups") or []),
        "answer": (root.outputs or {}).get("answer"),
        "passages": passages[:context] if context else passages,
    }


def log_assessments(rating: Rating):
    """The rating (and correction) as assessments on the trace."""
    from mlflow.entities import AssessmentSource

    import mlflow

    source = AssessmentSource(source_type="HUMAN", source_id=rating.user)
    logged = [
        mlflow.log_feedback(
            trace_id=rating.trace_id,
            name=RATING,
            value=rating.good,
            source=source,
            rationale=rating.correction,
        )
    ]
    if rating.correction:
        logged.append(
            mlflow.log_expectation(
                trace_id=rating.trace_id, name=EXPECTED, value=rating.correction, source=source
            )
        )
    return logged
