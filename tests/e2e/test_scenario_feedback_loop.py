"""People's ratings close the loop on the session's servers (tiny profile), through
`dualengine serve`: 30 answers rated bad (3 with the right answer) → the golden set grows →
the monitor's `negative_feedback_rate` is degraded and emits `dualengine.behaviour.degraded`
→ the retrain deployment runs → the gate evaluates on the grown golden set."""

from datetime import UTC, datetime

import pytest
import yaml
from test_monitoring import (
    _versions,
    finished,
    flow_runs,
    monitor_result,
    run_monitor,
    serving,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

NEVER = {"warn": 1e9, "degraded": 1e9}  # knowledge signals stay quiet: this is about behaviour


@pytest.fixture(scope="module")
def served(first_run, settings, tmp_path_factory):
    """`dualengine serve` with params where only people's ratings can degrade an engine."""
    root = tmp_path_factory.mktemp("feedback")
    params = yaml.safe_load(settings.params_path.read_text())
    monitor = params["monitor"]
    monitor |= {"min_queries": 1000, "golden_questions": 10, "golden_f1": False}
    monitor["cooldown_minutes"] = 0
    monitor["knowledge"] = {name: NEVER for name in monitor["knowledge"]}
    params["schedules"] |= {
        "monitor": "0 0 1 1 *",
        "reindex": "0 0 1 1 *",
        "retrain_cooldown_minutes": 0,  # other scenarios' retrains do not count here
    }
    with serving(settings, root, params):
        yield root


def test_bad_ratings_retrain_and_the_gate_uses_the_grown_golden_set(served, settings):
    from dualengine.api import engine_for, feedback
    from dualengine.models import ensure_tiny_model
    from dualengine.settings import Settings
    from tasks import registry
    from tasks.data import read_jsonl, sample_dataset_paths
    from tasks.generation import load_generator
    from tasks.golden import GoldenSet

    scenario = Settings()  # the scenario's params and query log, like the serve process
    name = scenario.params()["registry"]["model_name"]
    versions_before = {v.version for v in _versions(name)}
    golden = GoldenSet(scenario.state)
    size_before = len(golden.items())
    eval_path = sample_dataset_paths(scenario.data_dir, scenario.params()).eval
    rows = read_jsonl(eval_path)[:30]
    engine = engine_for(
        scenario,
        load_generator(str(ensure_tiny_model(scenario)), None, 128),
        "feedback-test",
        caller="scenario",
    )
    try:
        answers = [engine.ask(r["question"], ["public"]) for r in rows]
    finally:
        engine.close()  # the traces are exported before anyone rates them
    assert all(a.trace_id for a in answers)
    start = datetime.now(UTC)
    outcomes = [
        feedback(
            a.trace_id,
            good=False,
            correction=r["answer"] if n < 3 else None,
            user="scenario",
            settings=scenario,
        )
        for n, (a, r) in enumerate(zip(answers, rows, strict=True))
    ]
    assert all(o["query_log_rows"] == 1 for o in outcomes)
    assert [o["golden"]["status"] for o in outcomes[:3]] == ["added"] * 3
    grown = golden.items()
    assert len(grown) == size_before + 3 and grown[-1]["groups"] == ["public"]

    result = monitor_result(run_monitor())
    rate = next(s for s in result["signals"] if s["name"] == "negative_feedback_rate")
    assert rate["status"] == "degraded" and rate["value"] == 1.0, rate
    assert rate["detail"]["ratings"] == 30
    assert result["events"]["dualengine.behaviour.degraded"] == "emitted"
    assert result["golden_set"] == {"size": len(grown), "version": golden.version()}

    retrained = wait_for(
        "the retrain deployment to finish",
        lambda: finished(flow_runs("retrain/on-drift", start)),
        timeout=900,
    )
    assert retrained[0].state.is_completed(), retrained[0].state
    new = [v for v in _versions(name) if v.version not in versions_before]
    assert new, "retraining registered a challenger"
    challenger = registry.version_by_alias(name, "challenger")
    assert challenger.tags["golden_set_version"] == golden.version()
    # every golden question whose document is in the corpus was scored by the gate
    assert float(challenger.tags["gate_golden_questions"]) == len(grown)
    assert challenger.tags["gate_decision"].startswith(("promoted", "refused"))
