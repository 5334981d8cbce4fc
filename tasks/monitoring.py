"""The monitors' signals: each turns measurements into a `Signal` with thresholds from
params.yaml `monitor` (pure logic; the monitor flow gathers the measurements)."""

from __future__ import annotations

from typing import Any

import numpy as np

from tasks.drift import (
    DEGRADED,
    INSUFFICIENT,
    OK,
    WARN,
    Signal,
    classify,
    mmd_permutation_test,
)


def rated(
    engine: str, name: str, value: float | None, rule: dict, detail: dict[str, Any]
) -> Signal:
    """A signal whose status comes from its value and the rule's warn / degraded thresholds."""
    return Signal(
        engine,
        name,
        value,
        classify(value, rule["warn"], rule["degraded"]),
        rule["warn"],
        rule["degraded"],
        detail,
    )


def staleness(plan, data_version: str, live_version: str | None, rule: dict) -> Signal:
    """Documents of the current data missing from, or changed since, the live index."""
    stale = len(plan.new) + len(plan.changed) + len(plan.removed)
    return rated(
        "knowledge",
        "staleness",
        float(stale),
        rule,
        {
            "new": plan.new[:20],
            "changed": plan.changed[:20],
            "removed": plan.removed[:20],
            "data_version": data_version,
            "live_data_version": live_version,
        },
    )


def recall_drop(current: dict[str, float], baseline: dict[str, float], rule: dict) -> Signal:
    """Golden-set recall@k now vs its value when the live index was promoted (worst set)."""
    drops = {k: baseline[k] - v for k, v in current.items() if k in baseline}
    value = max(drops.values()) if drops else None
    return rated(
        "knowledge",
        "golden_recall_drop",
        value,
        rule,
        {"current": current, "at_promotion": baseline},
    )


def low_score_share(similarities: list[float | None], floor: float, min_n: int, rule) -> Signal:
    """Share of logged queries whose best passage is less similar than the answer floor."""
    values = [s for s in similarities if s is not None]
    share = sum(s < floor for s in values) / len(values) if len(values) >= min_n else None
    return rated(
        "knowledge",
        "low_score_share",
        share,
        rule,
        {"queries": len(values), "similarity_floor": floor},
    )


def corpus_distance(
    query_similarities: list[float | None], golden_similarities: list[float], min_n: int, rule
) -> Signal:
    """How much further logged queries sit from their nearest passage than golden questions
    do: mean (1 − best cosine similarity) of the queries minus that of the golden questions.
    (A corpus centroid says little about a corpus of several domains; the nearest passage
    does.)"""
    values = [s for s in query_similarities if s is not None]
    value, detail = None, {"queries": len(values)}
    if len(values) >= min_n and golden_similarities:
        now = 1.0 - sum(values) / len(values)
        ref = 1.0 - sum(golden_similarities) / len(golden_similarities)
        value, detail = now - ref, detail | {"queries_distance": now, "golden_distance": ref}
    return rated("knowledge", "corpus_distance_increase", value, rule, detail)


def embedding_drift(
    reference: np.ndarray, current: np.ndarray, min_n: int, rule: dict, seed: int = 0
) -> Signal:
    """MMD permutation test of logged query embeddings against the training questions.

    Degraded needs both a small p-value and an effect above `min_mmd2`, so a tiny shift that
    a large sample makes "significant" does not retrain the model."""
    if len(current) < min_n or len(reference) < min_n:
        return Signal(
            "behaviour",
            "query_drift",
            None,
            INSUFFICIENT,
            rule["warn"],
            rule["degraded"],
            {"queries": len(current)},
        )
    test = mmd_permutation_test(
        reference, current, int(rule["permutations"]), int(rule["sample_cap"]), seed
    )
    p = test["p_value"]
    status = OK
    if p <= rule["degraded"] and test["mmd2"] >= rule["min_mmd2"]:
        status = DEGRADED
    elif p <= rule["warn"]:
        status = WARN
    return Signal("behaviour", "query_drift", p, status, rule["warn"], rule["degraded"], test)


def oracle_f1_drop(current: float | None, at_promotion: float | None, rule: dict) -> Signal:
    """Golden-set F1 with the oracle passage now vs the champion's value at promotion."""
    value = None if current is None or at_promotion is None else at_promotion - current
    return rated(
        "behaviour",
        "golden_oracle_f1_drop",
        value,
        rule,
        {"current": current, "at_promotion": at_promotion},
    )


def conflict_rate(flags: list[bool | None], min_n: int, rule: dict) -> Signal:
    """Share of conflict-checked queries whose closed-book answer contradicted the grounded one."""
    checked = [f for f in flags if f is not None]
    rate = sum(checked) / len(checked) if len(checked) >= min_n else None
    return rated(
        "behaviour",
        "conflict_rate",
        rate,
        rule,
        {"checked_queries": len(checked)},
    )


def negative_feedback_rate(ratings: list[str], rule: dict) -> Signal:
    """Share of people's ratings in the window that say "bad" (`min_ratings` needed)."""
    rated_n = [r for r in ratings if r in ("good", "bad")]
    bad = sum(r == "bad" for r in rated_n)
    rate = bad / len(rated_n) if rated_n and len(rated_n) >= int(rule["min_ratings"]) else None
    return rated(
        "behaviour",
        "negative_feedback_rate",
        rate,
        rule,
        {"ratings": len(rated_n), "bad": bad, "window_hours": rule["window_hours"]},
    )


def engine_status(signals: list[Signal], engine: str) -> str:
    """degraded if any of the engine's signals is degraded, else warn if any warns, else ok."""
    statuses = {s.status for s in signals if s.engine == engine}
    if DEGRADED in statuses:
        return DEGRADED
    return WARN if WARN in statuses else OK


def evidence(signals: list[Signal], engine: str) -> dict[str, Any]:
    """What a degraded event carries: the engine's non-ok signals with their numbers."""
    return {
        s.name: {"value": s.value, "status": s.status, "detail": s.detail}
        for s in signals
        if s.engine == engine and s.status in (WARN, DEGRADED)
    }
