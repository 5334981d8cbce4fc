"""The behaviour engine against a real MLflow: train, register, load by alias, roll back;
resume after a kill; two-process Accelerate training on CPU (gloo)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dualengine.models import ensure_tiny_model
from tasks import registry
from tasks.data import write_jsonl
from tasks.training import encode_example, load_tokenizer, train_lora

pytestmark = pytest.mark.integration

MODEL = "test-generator"
SYSTEM = "Answer briefly."


def raft_rows(n=24):
    return [
        {
            "id": f"e{i}",
            "question": f"What is {i}+1?",
            "target": f"{i + 1} [1]",
            "passages": [{"passage_id": "p", "title": "math", "text": f"{i}+1={i + 1}"}],
        }
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def base(settings):
    return str(ensure_tiny_model(settings))


@pytest.fixture(scope="module")
def trained(stack, settings, base, tmp_path_factory):
    import mlflow

    tokenizer = load_tokenizer(base)
    examples = [
        encode_example(tokenizer, SYSTEM, r["question"], r["passages"], r["target"], 96)
        for r in raft_rows(16)
    ]
    params = settings.training_params() | {
        "max_steps": 12,
        "learning_rate": 0.01,
        "checkpoint_every": 0,
    }
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
    return run.info.run_id, result


def test_loss_falls_and_only_the_adapter_is_saved(trained):
    _, result = trained
    assert result.steps == 12
    assert sum(result.losses[-3:]) / 3 < sum(result.losses[:3]) / 3
    files = {p.name for p in Path(result.adapter_dir).iterdir()}
    assert "adapter_model.safetensors" in files and "model.safetensors" not in files


def test_register_load_by_alias_and_roll_back(trained, base, tmp_path):
    from tasks.generation import load_generator

    run_id, _ = trained
    first = registry.register_adapter(MODEL, run_id, "adapter", {"data_version": "d1"}, "one")
    second = registry.register_adapter(MODEL, run_id, "adapter", {"data_version": "d2"}, "two")
    registry.set_alias(MODEL, registry.CHAMPION, first)
    registry.set_alias(MODEL, registry.CHAMPION, second)
    assert registry.champion_history(MODEL)[-2:] == [first, second]

    version, adapter = registry.download_version(MODEL, registry.CHAMPION, tmp_path)
    assert str(version.version) == second and version.tags["data_version"] == "d2"
    generator = load_generator(base, adapter, 128)
    answers = generator.answer_many(
        SYSTEM, ["What is 3+1?"], [[{"passage_id": "p", "title": "m", "text": "3+1=4"}]], 4
    )
    assert len(answers) == 1 and isinstance(answers[0], str)

    assert registry.rollback_champion(MODEL) == (second, first)
    assert str(registry.version_by_alias(MODEL, registry.CHAMPION).version) == first


def test_missing_alias_is_a_clear_error(stack, tmp_path):
    with pytest.raises(LookupError, match="has no 'champion' version"):
        registry.download_version("no-such-model", registry.CHAMPION, tmp_path)


def _spec(tmp_path, settings, base, **params):
    write_jsonl(tmp_path / "train.jsonl", raft_rows(48))
    spec = {
        "base_model": base,
        "train_path": str(tmp_path / "train.jsonl"),
        "eval_path": None,
        "params": settings.training_params() | {"learning_rate": 0.01} | params,
        "system_prompt": SYSTEM,
        "output_dir": str(tmp_path / "adapter"),
        "checkpoint_dir": str(tmp_path / "ckpt"),
        "resume": False,
        "result_path": str(tmp_path / "result.json"),
        "torch_threads": 1,
    }
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    return spec


def test_resume_after_kill_reaches_the_same_final_step(settings, base, tmp_path):
    spec = _spec(
        tmp_path, settings, base, max_steps=400, checkpoint_every=3, batch_size=8, max_length=192
    )
    worker = [sys.executable, "-m", "flows.train_worker", str(tmp_path / "spec.json")]
    process = subprocess.Popen(
        worker, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    progress = tmp_path / "ckpt" / "latest" / "progress.json"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        if progress.exists() and json.loads(progress.read_text())["step"] >= 6:
            break
        time.sleep(0.05)
    assert process.poll() is None, "training finished before it could be killed"
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    killed_at = json.loads(progress.read_text())["step"]
    assert not (tmp_path / "result.json").exists()

    spec["resume"] = True
    spec["params"]["max_steps"] = killed_at + 6
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    subprocess.run(worker, check=True, capture_output=True)
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["resumed_from"] == killed_at
    assert result["steps"] == killed_at + 6
    assert len(result["losses"]) == killed_at + 6
    assert (tmp_path / "adapter" / "adapter_model.safetensors").exists()


def test_two_process_accelerate_launch_on_cpu(settings, base, tmp_path):
    _spec(tmp_path, settings, base, max_steps=10, checkpoint_every=0, batch_size=4)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "accelerate.commands.launch",
            "--num_processes",
            "2",
            "--num_machines",
            "1",
            "--cpu",
            "-m",
            "flows.train_worker",
            str(tmp_path / "spec.json"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=dict(os.environ, OMP_NUM_THREADS="1"),
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["steps"] == 10
    assert sum(result["losses"][-3:]) / 3 < sum(result["losses"][:3]) / 3
