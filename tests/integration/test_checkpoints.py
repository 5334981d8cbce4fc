"""Training checkpoints hold the trainable weights only, and resuming from one gives the same
adapter as an uninterrupted run (tiny model, CPU, no services)."""

from __future__ import annotations

import pytest
from safetensors.torch import load_file, save_file

from dualengine.models import ensure_tiny_model
from tasks.training import encode_example, load_tokenizer, train_lora

pytestmark = pytest.mark.integration

SYSTEM = "Answer briefly."


@pytest.fixture(scope="module")
def setup(settings):
    base = str(ensure_tiny_model(settings))
    tokenizer = load_tokenizer(base)
    examples = [
        encode_example(
            tokenizer,
            SYSTEM,
            f"What is {i}+1?",
            [{"passage_id": "p", "title": "math", "text": f"{i}+1={i + 1}"}],
            f"{i + 1} [1]",
            96,
        )
        for i in range(12)
    ]
    params = settings.training_params() | {
        "learning_rate": 0.01,
        "batch_size": 4,
        "lora_dropout": 0.0,
        "checkpoint_every": 2,
        "eval_every": 0,
        "patience": 0,
        "mixed_precision": "no",
    }
    return base, examples, params


def adapter_weights(folder):
    return load_file(str(folder / "adapter_model.safetensors"))


def test_a_checkpoint_holds_only_the_trainable_weights(setup, tmp_path):
    base, examples, params = setup
    train_lora(base, examples, params | {"max_steps": 2}, tmp_path / "a", checkpoint_dir=tmp_path)
    saved = load_file(str(tmp_path / "latest" / "model.safetensors"))
    assert saved, "the checkpoint lost the adapter"
    assert all("lora_" in name for name in saved), sorted(saved)[:5]
    assert (tmp_path / "latest" / "optimizer.bin").exists()


class Crash(Exception):
    pass


def crash_at(step: int):
    def on_step(done: int, _loss: float) -> None:
        if done == step:
            raise Crash(f"killed at step {done}")

    return on_step


def test_resuming_gives_the_uninterrupted_runs_adapter(setup, tmp_path):
    base, examples, params = setup
    run = params | {"max_steps": 4}
    whole = tmp_path / "whole"
    train_lora(base, examples, run, whole, checkpoint_dir=tmp_path / "w")
    ckpt = tmp_path / "r"
    with pytest.raises(Crash):  # dies in step 3, after the step-2 checkpoint
        train_lora(base, examples, run, tmp_path / "x", on_step=crash_at(3), checkpoint_dir=ckpt)
    resumed = train_lora(
        base, examples, run, tmp_path / "resumed", checkpoint_dir=ckpt, resume=True
    )
    assert resumed.resumed_from == 2 and resumed.steps == 4
    expected, got = adapter_weights(whole), adapter_weights(tmp_path / "resumed")
    assert expected.keys() == got.keys()
    for name in expected:
        assert (expected[name] - got[name]).abs().max() < 1e-6, name
    fresh = tmp_path / "fresh"  # control: the checkpoint's state is what makes them equal
    train_lora(base, examples, params | {"max_steps": 2}, fresh)
    again = adapter_weights(fresh)
    assert any((again[n] - got[n]).abs().max() > 1e-6 for n in again)


def test_a_checkpoint_without_the_adapter_is_refused(setup, tmp_path):
    base, examples, params = setup
    train_lora(base, examples, params | {"max_steps": 2}, tmp_path / "a", checkpoint_dir=tmp_path)
    weights = tmp_path / "latest" / "model.safetensors"
    state = load_file(str(weights))
    save_file(dict(list(state.items())[1:]), str(weights))  # one LoRA matrix lost
    with pytest.raises(RuntimeError, match="does not match the model's trainable weights"):
        train_lora(
            base,
            examples,
            params | {"max_steps": 4},
            tmp_path / "b",
            checkpoint_dir=tmp_path,
            resume=True,
        )
