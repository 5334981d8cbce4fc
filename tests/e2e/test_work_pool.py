"""Beyond one process: `dualengine deploy --pool` and two `prefect worker start` processes on
loopback. Read-only flows run side by side; finetune runs take the training slot one at a time
(asserted from the Prefect API's start/end timestamps)."""

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from e2e_helpers import cli

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

POOL = "dualengine-test-pool"


def overlap(a, b) -> bool:
    """Two (start, end) intervals share time."""
    return a[0] < b[1] and b[0] < a[1]


def wait_for(run_ids, timeout=900):
    """The flow runs once all are final, with their train-adapter task runs."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterId,
        TaskRunFilter,
        TaskRunFilterName,
    )

    async def read():
        async with get_client() as client:
            runs = [await client.read_flow_run(i) for i in run_ids]
            tasks = await client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=run_ids)),
                task_run_filter=TaskRunFilter(name=TaskRunFilterName(like_="train-adapter")),
            )
            return runs, tasks

    deadline = time.monotonic() + timeout
    while True:
        runs, tasks = asyncio.run(read())
        if all(r.state.is_final() for r in runs):
            return runs, tasks
        assert time.monotonic() < deadline, [r.state for r in runs]
        time.sleep(2)


@pytest.fixture(scope="module")
def two_workers(first_run):
    out = cli("deploy", "--pool", POOL, "--only", "evaluate-retrieval", "--only", "finetune")
    assert f"work pool '{POOL}'" in out.stderr
    prefect = str(Path(sys.executable).parent / "prefect")
    env = dict(os.environ, PREFECT_WORKER_QUERY_SECONDS="1", PREFECT_WORKER_PREFETCH_SECONDS="5")
    workers = [
        subprocess.Popen(
            [prefect, "worker", "start", "--pool", POOL, "--limit", "1", "--name", f"w{i}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
        for i in (1, 2)
    ]
    try:
        yield workers
    finally:
        for worker in workers:
            os.killpg(worker.pid, signal.SIGTERM)
        for worker in workers:
            worker.wait(timeout=60)


def trigger(name, parameters, count=2):
    from prefect.deployments import run_deployment

    return [
        run_deployment(name, parameters=parameters, timeout=0, as_subflow=False).id
        for _ in range(count)
    ]


def test_two_workers_run_two_flow_runs_at_once(two_workers):
    runs, _ = wait_for(trigger("evaluate-retrieval/manual", {"limit": 10}))
    assert all(r.state.is_completed() for r in runs), [r.state for r in runs]
    assert {r.work_pool_name for r in runs} == {POOL}
    a, b = ((r.start_time, r.end_time) for r in runs)
    assert overlap(a, b), f"the two runs did not run at once: {a} / {b}"


def test_the_training_limit_keeps_finetune_runs_one_at_a_time(two_workers):
    runs, tasks = wait_for(trigger("finetune/manual", {"profile": "tiny", "max_steps": 2}))
    assert all(r.state.is_completed() for r in runs), [r.state for r in runs]
    # both runs were on a worker at once (two workers) ...
    a, b = ((r.start_time, r.end_time) for r in runs)
    assert overlap(a, b), f"the finetune runs were not started together: {a} / {b}"
    # ... yet their trainings took turns
    assert len(tasks) == 2, tasks
    t1, t2 = ((t.start_time, t.end_time) for t in tasks)
    assert not overlap(t1, t2), f"two trainings ran at once: {t1} / {t2}"
