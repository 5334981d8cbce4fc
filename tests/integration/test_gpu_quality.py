"""benchmarks/gpu_quality.sh end to end on the CPU: prepare a small carry folder, dry-run the
GPU driver with the tiny model (2 training steps, 3 questions) and rebuild the table from the
per-question results. No services: the script must run where there are none."""

import json
import os
import subprocess
import sys
from pathlib import Path

from dualengine.models import ensure_tiny_model

ROOT = Path(__file__).resolve().parents[2]


def test_gpu_quality_dry_run(settings, tmp_path):
    carry, out = tmp_path / "carry", tmp_path / "out"
    env = os.environ | {"PYTHONPATH": str(ROOT), "DUALENGINE_TORCH_THREADS": "1"}
    script = [sys.executable, str(ROOT / "benchmarks" / "gpu_quality.py")]
    prepare = [*script, "prepare", "--carry", str(carry), "--limit-eval", "3"]
    subprocess.run([*prepare, "--limit-train", "12", "--no-wheel"], check=True, env=env)
    missing = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_quality.sh"), str(tmp_path / "no-parts")],
        env=env | {"GPU_QUALITY_CARRY": str(carry), "OUT": str(out)},
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 2 and "gguf.part0" in missing.stderr
    run_env = env | {
        "GPU_QUALITY_CARRY": str(carry),
        "GPU_QUALITY_BASE_MODEL": str(ensure_tiny_model(settings)),
        "OUT": str(out),
        "PYTHON": sys.executable,
    }
    command = ["bash", str(ROOT / "benchmarks" / "gpu_quality.sh"), "none", "--dry-run"]
    command += ["--questions", "3", "--work", str(tmp_path / "work"), "--batch", "8"]
    subprocess.run(command, check=True, env=run_env, timeout=600)
    assert sorted(p.name for p in out.iterdir()) == [
        "log.txt",
        "results.json",
        "summary.json",
        "table.md",
    ]
    results = json.loads((out / "results.json").read_text())
    assert list(results["recipes"]) == ["base", "gpu"]
    gpu = results["recipes"]["gpu"]
    assert gpu["meta"]["steps"] == 2 and gpu["meta"]["train_examples"] > 0
    assert gpu["meta"]["dropped_examples"] >= 0
    for condition in ("closed_book", "retrieved", "oracle", "missing", "oracle_window"):
        assert len(gpu["scores"][condition]["f1"]) == 3
    summary = json.loads((out / "summary.json").read_text())
    assert "ft_rag_minus_rag_only" in summary["gaps"]["gpu"]
    table = (out / "table.md").read_text()
    assert "| base |" in table and "| gpu | 2 |" in table
    report = subprocess.run(
        [*script, "report", str(out / "results.json")],
        check=True,
        env=env,
        capture_output=True,
        text=True,
    )
    assert "| gpu | 2 |" in report.stdout
