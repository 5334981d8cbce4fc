"""The behaviour engine against a real MLflow: train, register, gate, load by alias."""

import pytest

from dualengine.models import ensure_tiny_model
from tasks import registry
from tasks.training import encode_example, load_tokenizer, train_lora

pytestmark = pytest.mark.integration

MODEL = "test-generator"


@pytest.fixture(scope="module")
def trained(stack, settings, tmp_path_factory):
    import mlflow

    base = str(ensure_tiny_model(settings))
    tokenizer = load_tokenizer(base)
    examples = [
        encode_example(
            tokenizer,
            "Answer briefly.",
            f"What is {i}+1?",
            [{"passage_id": "p", "title": "math", "text": f"{i}+1={i + 1}"}],
            str(i + 1),
            96,
        )
        for i in range(16)
    ]
    params = settings.training_params() | {"max_steps": 12, "learning_rate": 0.01}
    out = tmp_path_factory.mktemp("adapter")
    mlflow.set_experiment("test-behaviour")
    with mlflow.start_run() as run:
        result = train_lora(
            base,
            examples,
            params,
            out,
            on_step=lambda s, v: mlflow.log_metric("train_loss", v, step=s),
        )
        mlflow.log_artifacts(str(out), artifact_path="adapter")
    return base, run.info.run_id, result


def test_loss_falls_and_only_the_adapter_is_saved(trained):
    _, _, result = trained
    assert result.steps == 12
    assert sum(result.losses[-3:]) / 3 < sum(result.losses[:3]) / 3
    files = {p.name for p in __import__("pathlib").Path(result.adapter_dir).iterdir()}
    assert "adapter_model.safetensors" in files and "model.safetensors" not in files


def test_register_gate_and_load_by_alias(trained, settings, tmp_path):
    from tasks.generation import load_generator

    base, run_id, _ = trained
    first = registry.register_adapter(MODEL, run_id, "adapter", {"eval_f1": 0.3}, "first")
    decision = registry.promote(MODEL, first, "eval_f1", 0.0)
    assert decision.promoted and decision.champion_after == first

    worse = registry.register_adapter(MODEL, run_id, "adapter", {"eval_f1": 0.1}, "worse")
    refused = registry.promote(MODEL, worse, "eval_f1", 0.0)
    assert not refused.promoted and refused.champion_after == first
    assert registry.version_by_alias(MODEL, registry.CHALLENGER).version == worse
    assert registry.version_by_alias(MODEL, registry.CHAMPION).version == first

    version, adapter = registry.download_version(MODEL, registry.CHAMPION, tmp_path)
    assert str(version.version) == first
    generator = load_generator(base, adapter, 128)
    answers = generator.answer_batch(
        "Answer briefly.",
        ["What is 3+1?"],
        [[{"passage_id": "p", "title": "m", "text": "3+1=4"}]],
        4,
    )
    assert len(answers) == 1 and isinstance(answers[0], str)


def test_missing_alias_is_a_clear_error(stack, tmp_path):
    with pytest.raises(LookupError, match="has no 'champion' version"):
        registry.download_version("no-such-model", registry.CHAMPION, tmp_path)
