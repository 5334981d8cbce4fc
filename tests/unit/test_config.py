"""params.yaml as typed, validated sections: the real file, the variants tests write, and bad
files that must fail at load with the file, the key path and the reason."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, get_args

import pytest
import yaml

from dualengine.config import Config, ParamsError, load_config
from dualengine.config_base import RetrievalMetric
from dualengine.settings import Settings

REAL = Path(__file__).resolve().parents[2] / "params.yaml"


@pytest.fixture
def raw() -> dict[str, Any]:
    return copy.deepcopy(yaml.safe_load(REAL.read_text()))


def write(tmp_path: Path, params: Any, name: str = "params.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(params, allow_unicode=True))
    return path


def test_the_real_file_validates_and_every_profile_resolves():
    config = load_config(REAL)
    assert isinstance(config, Config)
    assert config.index.alias == "DualEnginePassages"
    assert config.monitor.behaviour.query_drift.permutations == 200
    raw = yaml.safe_load(REAL.read_text())
    for name, own in raw["training"]["profiles"].items():
        profile = config.training_profile(name)
        assert profile.as_dict() == own | {
            "system_prompt": raw["training"]["system_prompt"].strip(),
            "seed": raw["training"]["seed"],
        }
        assert profile.context_tokens == own.get("context_length") or own["max_length"]
    assert config.training_profile("tiny").context_tokens == 1024  # no context_length: max_length


def test_settings_reads_are_thin_views_of_the_config(tmp_path, raw):
    raw["training"]["profiles"]["tiny"]["max_length"] = 256
    raw["inference"]["quantize"] = "int8"
    settings = Settings(params_file=write(tmp_path, raw), profile="tiny")
    assert settings.config().training.profiles["tiny"].max_length == 256
    assert settings.context_length() == 256
    assert settings.quantize() == "int8"
    run = settings.with_training_override(max_steps=3)
    assert run.training_params()["max_steps"] == 3
    assert run.training_profile().max_steps == 3
    assert settings.training_params()["max_steps"] == 8  # the override is the copy's only


def test_inference_may_be_left_out(tmp_path, raw):
    del raw["inference"]
    assert load_config(write(tmp_path, raw)).inference.quantize == "auto"


def _conftest(p):  # tests/conftest.py
    p["knowledge"] = {"corpora": ["xquad"], "eval_sets": ["xquad"]}
    p["index"]["gate_max_questions"] = 60
    p["evaluation"] |= {"sets": ["xquad"], "questions": 8}


def _monitoring(p):  # tests/e2e/test_monitoring.py
    p["knowledge"]["corpora"] = ["xquad", "/tmp/some/new_filings"]
    p["monitor"] |= {"min_queries": 20, "golden_questions": 20, "cooldown_minutes": 0}
    p["schedules"] |= {"monitor": "0 0 1 1 *", "reindex": "0 0 1 1 *"}


def _feedback(p):  # tests/e2e/test_scenario_feedback_loop.py
    monitor = p["monitor"]
    monitor |= {"min_queries": 1000, "golden_questions": 10, "golden_f1": False}
    monitor["cooldown_minutes"] = 0
    monitor["knowledge"] = {n: {"warn": 1e9, "degraded": 1e9} for n in monitor["knowledge"]}
    p["schedules"] |= {"retrain_cooldown_minutes": 0}


def _access(p):  # tests/integration/test_access_property.py
    p["index"] |= {"alias": "AccessProperty", "collection_prefix": "AccessProperty"}
    p["index"]["keep_versions"] = 1
    p["chunking"] = {"max_tokens": 48, "overlap_tokens": 8}
    p["registry"] |= {"model_name": "access-property-generator", "hybrid_model_name": "x-hybrid"}
    p["answer"] |= {"log_queries": False, "min_similarity": 0.0}
    p["retrieval"] |= {"default_groups": ["public"], "anonymous_groups": ["public"]}


@pytest.mark.parametrize("change", [_conftest, _monitoring, _feedback, _access])
def test_the_params_files_other_tests_write_validate(tmp_path, raw, change):
    change(raw)
    load_config(write(tmp_path, raw))


def _set(params: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    for key in parents:
        params = params[key]
    if value is DELETE:
        del params[last]
    else:
        params[last] = value


DELETE = object()

BAD = [
    ("training.profiles.default.max_steps", "many", "valid integer"),
    ("training.profiles.default.max_steps", -5, "greater than or equal to 0"),
    ("training.profiles.default.max_steps", 2.5, "valid integer"),
    ("training.profiles.tiny.max_step", 3, "unknown key"),
    ("trainig", {}, "unknown key"),
    ("index.alias", DELETE, "required key is missing"),
    ("monitor.behaviour", DELETE, "required key is missing"),
    ("data.eval_fraction", -0.1, "greater than 0"),
    ("training.raft.oracle_missing_fraction", 1.5, "less than or equal to 1"),
    ("retrieval.alpha", -0.5, "greater than or equal to 0"),
    ("training.profiles.gpu.gate_metric", "accuracy", "unknown gate metric 'accuracy'"),
    ("index.gate_metric", "recall_at_3", "recall_at_5"),
    ("inference.quantize", "int4", "'auto', 'none', 'bf16' or 'int8'"),
    ("training.profiles.gpu.mixed_precision", "fp8", "'no', 'fp16', 'bf16' or 'auto'"),
    ("answer.log_queries", "yes", "valid boolean"),
    ("validation.injection_patterns", ["(unclosed"], "not a regular expression"),
    ("schedules.monitor", "61 * * * *", "outside 0-59"),
    ("schedules.reindex", "hourly", "five fields"),
    ("retrieval.anonymous_groups", ["*"], "should match pattern"),
    ("retrieval.default_groups", [], "at least 1 item"),
    ("index.alias", "lowercase", "should match pattern"),
    ("chunking.overlap_tokens", 200, "200 is not smaller than max_tokens (200)"),
    ("retrieval.context_passages", 9, "9 is above top_k (5)"),
    ("monitor.knowledge.staleness", {"warn": 2, "degraded": 1}, "1.0 is below warn (2.0)"),
    ("monitor.behaviour.query_drift.degraded", 0.5, "0.5 is above warn (0.05)"),
    ("validation.question_max_chars", 2, "2 is below question_min_chars (3)"),
    ("monitor.behaviour.negative_feedback_rate.min_ratings", DELETE, "required key is missing"),
    ("registry.guardrails", ["format_ok", "vibes"], "unknown guardrail"),
    ("evaluation.sets", ["squad"], "unknown sample"),
    ("knowledge.eval_sets", ["xquad", "nope"], "unknown sample"),
    ("training.styles.sec10q.groups", "finance", "valid list"),
]


@pytest.mark.parametrize(("key", "value", "reason"), BAD, ids=[f"{k}={v!r:.20}" for k, v, _ in BAD])
def test_a_bad_value_fails_at_load_naming_file_key_and_reason(tmp_path, raw, key, value, reason):
    _set(raw, key, value)
    path = write(tmp_path, raw)
    with pytest.raises(ParamsError) as caught:
        load_config(path)
    message = str(caught.value)
    assert str(path) in message
    line = next((p for p in caught.value.problems if p.startswith(key)), None)
    assert line is not None, message
    assert reason in line, line


def test_every_problem_is_reported_at_once(tmp_path, raw):
    raw["embedding"]["batch_size"] = 0
    raw["registry"]["bootstrap_samples"] = "many"
    with pytest.raises(ParamsError) as caught:
        load_config(write(tmp_path, raw))
    keys = sorted(p.split(":")[0] for p in caught.value.problems)
    assert keys == ["embedding.batch_size", "registry.bootstrap_samples"]


def test_a_bad_file_fails_through_settings_too(tmp_path, raw):
    raw["index"]["keep_versions"] = -1
    settings = Settings(params_file=write(tmp_path, raw))
    with pytest.raises(ParamsError, match=r"index\.keep_versions"):
        settings.params()
    with pytest.raises(ValueError, match=r"index\.keep_versions"):  # existing handlers catch it
        settings.training_params()


@pytest.mark.parametrize("text", ["", "- a\n- b\n", "just text\n", "a: [1, 2\n"])
def test_a_file_that_is_not_a_mapping_of_sections_is_refused(tmp_path, text):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(ParamsError, match=str(path)):
        load_config(path)


def test_a_missing_file_names_the_setting(tmp_path):
    with pytest.raises(FileNotFoundError, match="DUALENGINE_PARAMS_FILE"):
        load_config(tmp_path / "absent.yaml")


def test_overrides_and_profiles_are_validated(tmp_path, raw):
    config = load_config(write(tmp_path, raw))
    assert config.training_profile("tiny", max_steps=0).max_steps == 0  # an untrained adapter
    with pytest.raises(ParamsError, match=r"training\.profiles\.tiny\.max_steps.*greater than"):
        config.training_profile("tiny", max_steps=-1)
    with pytest.raises(ParamsError, match=r"training\.profiles\.tiny\.max_stesp.*unknown key"):
        config.training_profile("tiny", max_stesp=3)
    with pytest.raises(ParamsError, match=r"training\.profiles\.huge: no such profile"):
        config.training_profile("huge")


def test_built_once_per_file_version(tmp_path, raw):
    path = write(tmp_path, raw)
    first = load_config(path)
    assert load_config(path) is first
    raw["retrieval"]["top_k"] = 7
    path.write_text(yaml.safe_dump(raw))
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert load_config(path).retrieval.top_k == 7


def test_sections_are_read_only(raw, tmp_path):
    config = load_config(write(tmp_path, raw))
    with pytest.raises(ValueError, match="frozen"):
        config.retrieval.top_k = 1  # type: ignore[misc]


def test_style_is_the_indexed_corpus_style_only(tmp_path, raw):
    config = load_config(write(tmp_path, raw))
    assert config.style("sec10q").max_new_tokens == 160
    assert config.style("xquad") is None
    _conftest(raw)
    assert load_config(write(tmp_path, raw, "only-xquad.yaml")).style("sec10q") is None


def test_the_index_gate_metrics_are_the_ones_retrieval_measures():
    from tasks.retrieval import retrieval_metrics

    assert set(get_args(RetrievalMetric)) == set(retrieval_metrics([["a#0"]], [["a"]]))
