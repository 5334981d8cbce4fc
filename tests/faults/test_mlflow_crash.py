"""kill -9 MLflow while `dualengine finetune` trains: a clean failure (exit 2, a message naming
MLflow, no traceback), no alias on a missing version; after a restart `finetune --resume`
continues from the checkpoint and registers the challenger."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.faults]

STEPS = "40"  # the tiny profile checkpoints every 4 steps


def finetune(env, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "flows", "finetune", "--profile", "tiny", "--max-steps", STEPS]
        + list(extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def aliases_point_at_existing_versions(client, name) -> dict[str, str]:
    from mlflow.exceptions import MlflowException

    try:
        model = client.get_registered_model(name)
    except MlflowException:
        return {}  # nothing registered: no alias at all
    existing = {v.version for v in client.search_model_versions(f"name='{name}'")}
    assert set(model.aliases.values()) <= existing, (model.aliases, existing)
    return dict(model.aliases)


def test_kill_mlflow_during_finetune_then_resume(first_run, own_mlflow, settings, tmp_path):
    from mlflow import MlflowClient

    uri = own_mlflow.env["MLFLOW_TRACKING_URI"]
    env = dict(
        os.environ,
        **own_mlflow.env,
        DUALENGINE_RAFT_DIR=str(tmp_path / "raft"),
        MLFLOW_HTTP_REQUEST_MAX_RETRIES="0",
        MLFLOW_HTTP_REQUEST_TIMEOUT="10",
    )
    client = MlflowClient(tracking_uri=uri)
    name = settings.params()["registry"]["model_name"]
    client.search_experiments()  # the fresh server answers real requests, not only /health
    process = finetune(env)
    try:
        deadline = time.monotonic() + 600
        step = 0
        while step < 5 and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.3)
            runs = client.search_runs(
                [e.experiment_id for e in client.search_experiments()],
                filter_string="attributes.status = 'RUNNING'",
            )
            history = [client.get_metric_history(r.info.run_id, "train_loss") for r in runs]
            step = max((m.step for h in history for m in h), default=0)
        assert process.poll() is None, process.communicate()[1][-3000:]
        assert step >= 5, "training never got past its first checkpoint"
        own_mlflow.kill()
        _, stderr = process.communicate(timeout=600)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 2, stderr[-3000:]
    assert "mlflow" in stderr and "became unreachable" in stderr
    assert stderr.rfind("became unreachable") > stderr.rfind("Traceback")  # the CLI's last word

    own_mlflow.start()
    client.search_experiments()
    assert aliases_point_at_existing_versions(client, name) == {}
    resumed = finetune(env, "--resume", "--json")
    stdout, stderr = resumed.communicate(timeout=900)
    assert resumed.returncode == 0, stderr[-3000:]
    result = json.loads(stdout)
    assert result["training"]["resumed_from"] >= 4
    assert result["training"]["steps"] == int(STEPS)
    aliases = aliases_point_at_existing_versions(client, name)
    assert aliases.get("challenger") == str(result["challenger_version"])
