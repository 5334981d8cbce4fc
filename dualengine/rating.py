"""Apply one person's rating of an answer everywhere it belongs: MLflow assessments on the
trace, the query log row, and (for a correction) a candidate golden question.

Used by `dualengine feedback`, `dualengine.api.feedback` and the web app's `POST /feedback`.
"""

from __future__ import annotations

import getpass
from typing import Any

from dualengine.settings import Settings
from tasks.feedback import answer_trace, log_assessments, parse_rating, trace_facts
from tasks.golden import INVALID, GoldenOutcome, GoldenSet, candidate


def default_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def rate_answer(
    settings: Settings,
    trace_id: str,
    good: bool,
    bad: bool,
    correction: str | None = None,
    user: str | None = None,
) -> dict[str, Any]:
    """Validate the request (FeedbackError), find the answer's trace (LookupError), then log
    the assessments, mark the query-log row and offer the correction to the golden set."""
    from dualengine.endpoints import export_endpoints
    from tasks.query_log import QueryLog

    config = settings.config()
    rating = parse_rating(
        trace_id, good, bad, correction, user or default_user(), config.validation.answer_max_chars
    )
    export_endpoints(settings)
    facts = trace_facts(answer_trace(rating.trace_id))
    assessments = log_assessments(rating)
    rows = 0
    if config.answer.log_queries:
        log = QueryLog(settings.query_log)
        try:
            rows = log.rate(rating.trace_id, rating.label, rating.correction)
        finally:
            log.close()
    golden = None
    if rating.correction:
        rules = config.validation.model_dump()
        golden = offer_golden(settings, facts, rating.correction, rating.trace_id, rules)
    return {
        "trace_id": rating.trace_id,
        "rating": rating.label,
        "correction": rating.correction,
        "user": rating.user,
        "assessment_ids": [a.assessment_id for a in assessments],
        "query_log_rows": rows,
        "golden": golden.as_dict() if golden else None,
    }


def offer_golden(
    settings: Settings,
    facts: dict[str, Any],
    correction: str,
    trace_id: str,
    rules: dict[str, Any],
) -> GoldenOutcome:
    """The correction as a candidate golden question (needs the passages it was given)."""
    golden = GoldenSet(settings.state)
    item = candidate(facts["question"], correction, facts["groups"], facts["passages"], trace_id)
    if not facts["passages"]:
        return GoldenOutcome(
            INVALID,
            item["id"],
            golden.version(),
            len(golden.items()),
            "the answer had no retrieved passages to ground a golden question",
        )
    return golden.add(item, rules, known_ids=None)
