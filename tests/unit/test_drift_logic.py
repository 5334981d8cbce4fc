"""Drift statistics and monitor signals (pure logic)."""

import numpy as np
import pytest

from tasks import monitoring
from tasks.drift import DEGRADED, INSUFFICIENT, OK, WARN, classify, mmd_permutation_test
from tasks.indexing import IncrementalPlan

DRIFT_RULE = {
    "warn": 0.05,
    "degraded": 0.01,
    "min_mmd2": 0.002,
    "permutations": 200,
    "sample_cap": 300,
}


def test_mmd_separates_shifted_from_unshifted_samples():
    rng = np.random.default_rng(0)
    reference = rng.normal(size=(500, 32))
    same = mmd_permutation_test(reference, rng.normal(size=(300, 32)), seed=1)
    shifted = mmd_permutation_test(reference, rng.normal(size=(300, 32)) + 0.5, seed=1)
    assert same["p_value"] > 0.05
    assert shifted["p_value"] < 0.01 and shifted["mmd2"] > same["mmd2"]


def test_classify_both_directions_and_missing_values():
    assert classify(0.01, 0.02, 0.05) == OK
    assert classify(0.03, 0.02, 0.05) == WARN
    assert classify(0.05, 0.02, 0.05) == DEGRADED
    assert classify(0.9, 0.8, 0.5, higher_is_worse=False) == OK
    assert classify(0.4, 0.8, 0.5, higher_is_worse=False) == DEGRADED
    assert classify(None, 1, 2) == INSUFFICIENT


def test_staleness_counts_new_changed_and_removed_documents():
    plan = IncrementalPlan(["n1"], ["c1", "c2"], [], 10, [])
    signal = monitoring.staleness(plan, "v2", "v1", {"warn": 1, "degraded": 3})
    assert signal.value == 3 and signal.status == DEGRADED
    assert signal.detail["new"] == ["n1"] and signal.detail["live_data_version"] == "v1"
    fresh = monitoring.staleness(
        IncrementalPlan([], [], [], 10, []), "v1", "v1", {"warn": 1, "degraded": 3}
    )
    assert fresh.status == OK


def test_query_signals_need_enough_queries():
    rule = {"warn": 0.25, "degraded": 0.5}
    assert monitoring.low_score_share([0.1] * 5, 0.2, 30, rule).status == INSUFFICIENT
    signal = monitoring.low_score_share([0.1] * 20 + [0.9] * 20, 0.2, 30, rule)
    assert signal.value == pytest.approx(0.5) and signal.status == DEGRADED
    few = monitoring.embedding_drift(np.zeros((50, 4)), np.zeros((3, 4)), 30, DRIFT_RULE)
    assert few.status == INSUFFICIENT


def test_drift_needs_an_effect_as_well_as_a_small_p_value():
    rng = np.random.default_rng(3)
    reference = rng.normal(size=(400, 16))
    moved = monitoring.embedding_drift(reference, rng.normal(size=(200, 16)) + 1.0, 30, DRIFT_RULE)
    assert moved.status == DEGRADED
    strict = DRIFT_RULE | {"min_mmd2": 10.0}  # an effect floor nothing reaches
    assert (
        monitoring.embedding_drift(reference, rng.normal(size=(200, 16)) + 1.0, 30, strict).status
        == WARN
    )


def test_engine_status_and_evidence():
    signals = [
        monitoring.recall_drop(
            {"x.recall_at_5": 0.80}, {"x.recall_at_5": 0.90}, {"warn": 0.02, "degraded": 0.05}
        ),
        monitoring.conflict_rate([True] * 3 + [False] * 27, 30, {"warn": 0.2, "degraded": 0.4}),
    ]
    assert monitoring.engine_status(signals, "knowledge") == DEGRADED
    assert monitoring.engine_status(signals, "behaviour") == OK
    evidence = monitoring.evidence(signals, "knowledge")
    assert evidence["golden_recall_drop"]["value"] == pytest.approx(0.10)
    assert monitoring.evidence(signals, "behaviour") == {}


def test_nearest_passage_distance_against_golden_questions():
    rule = {"warn": 0.05, "degraded": 0.1}
    far = monitoring.corpus_distance([0.3] * 40, [0.6] * 20, 30, rule)
    assert far.value == pytest.approx(0.3) and far.status == DEGRADED
    near = monitoring.corpus_distance([0.62] * 40, [0.6] * 20, 30, rule)
    assert near.status == OK and near.value < 0
    assert monitoring.corpus_distance([0.3] * 5, [0.6] * 20, 30, rule).status == INSUFFICIENT
