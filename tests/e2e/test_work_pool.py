"""Beyond one process: the deployments on a process work pool, run by `prefect worker start`."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from e2e_helpers import cli

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def test_a_process_worker_runs_a_deployment(first_run, settings):
    from prefect.deployments import run_deployment

    pool = "dualengine-test-pool"
    out = cli("serve", "--pool", pool, "--only", "evaluate-retrieval")
    assert f"work pool '{pool}'" in out.stderr
    prefect = str(Path(sys.executable).parent / "prefect")
    worker = subprocess.Popen(
        [prefect, "worker", "start", "--pool", pool, "--limit", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        run = run_deployment(
            "evaluate-retrieval/manual", parameters={"limit": 10}, timeout=600, as_subflow=False
        )
        assert run.state.is_completed(), run.state
        assert run.work_pool_name == pool
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=60)
