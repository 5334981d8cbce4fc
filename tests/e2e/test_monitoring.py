"""The closed loop on the session's servers (tiny profile), hands-free through `dualengine serve`:
(a) new filings land → staleness degraded → the reindex deployment runs from the event → the
next monitor run is ok; (b) a query stream from another domain → behaviour drift degraded →
the retrain deployment runs → a challenger is registered and the gate decides; (c) `champion`
set through the MLflow API → webhook → the evaluation deployment runs for that version.
Every assertion reads flow runs, events and registry state from the APIs, not log text."""

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime

import pytest
import yaml
from e2e_helpers import cli

from dualengine import endpoints

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

SMALLEST_FILING = "2023 Q2 AAPL.pdf"


def flow_runs(deployment: str, since: datetime):
    """Flow runs of a deployment (`flow/name`) created after `since`, oldest first."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    async def read():
        async with get_client() as client:
            found = await client.read_deployment_by_name(deployment)
            runs = await client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[found.id]))
            )
            # runs the scheduler creates for the cron schedules are not the ones under test
            return [r for r in runs if r.created and r.created >= since and not r.auto_scheduled]

    return sorted(asyncio.run(read()), key=lambda r: r.created)


def events(name: str, since: datetime):
    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventNameFilter, EventOccurredFilter

    async def read():
        async with get_client() as client:
            page = await client.read_events(
                EventFilter(
                    event=EventNameFilter(name=[name]), occurred=EventOccurredFilter(since=since)
                ),
                limit=50,
            )
            return page.events

    return asyncio.run(read())


def wait_for(what, check, timeout=600, every=3.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def run_monitor():
    """Start the hourly monitor deployment now and return its finished flow run."""
    from prefect.deployments import run_deployment

    run = run_deployment("monitor/hourly", timeout=600, as_subflow=False)
    assert run.state.is_completed(), run.state
    return run


def monitor_result(run):
    """The monitor's return value (it persists its result, like the Prefect UI shows it)."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return client.read_flow_run(run.id).state.result(raise_on_failure=True)


def latest_artifacts(keys):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    with get_client(sync_client=True) as client:
        return client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=keys)),
            sort=ArtifactSort.CREATED_DESC,
            limit=1,
        )


def finished(runs):
    return [r for r in runs if r.state and r.state.is_final()]


@pytest.fixture(scope="module")
def served(first_run, settings, tmp_path_factory):
    """`dualengine serve` with a params file whose corpora include a watched filings folder."""
    root = tmp_path_factory.mktemp("scenario")
    filings = root / "new_filings"
    filings.mkdir()
    params = yaml.safe_load(settings.params_path.read_text())
    params["knowledge"]["corpora"] = ["xquad", str(filings)]
    params["monitor"] |= {"min_queries": 20, "golden_questions": 20, "cooldown_minutes": 0}
    # the cron schedules must not fire mid-test: the scenario starts every run itself
    params["schedules"] |= {"monitor": "0 0 1 1 *", "reindex": "0 0 1 1 *"}
    path = root / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    with serving(settings, root, params) as log:
        yield {"filings": filings, "root": root, "log": log}


@contextlib.contextmanager
def serving(settings, root, params):
    """`dualengine serve` (tiny profile) on `params`, with its own query log and webhook port,
    after a re-index that makes the live index match these params' corpora (another scenario
    may have left documents of its own there). The environment is restored afterwards."""
    path = root / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    env = os.environ | {
        "DUALENGINE_PARAMS_FILE": str(path),
        "DUALENGINE_WEBHOOK_PORT": str(endpoints.free_port()),
        "DUALENGINE_QUERY_LOG_URL": f"sqlite:///{root / 'queries.db'}",
    }
    os.environ.update({k: env[k] for k in ("DUALENGINE_PARAMS_FILE", "DUALENGINE_QUERY_LOG_URL")})
    log = open(root / "serve.log", "w")  # noqa: SIM115 - closed below
    server = None
    try:
        cli("reindex", "--allow-mass-delete")
        server = subprocess.Popen(
            [sys.executable, "-m", "flows", "serve", "--profile", "tiny"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        wait_for("the deployments", lambda: _deployment_exists("monitor/hourly"), timeout=180)
        yield root / "serve.log"
    finally:
        if server is not None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
        log.close()
        os.environ["DUALENGINE_PARAMS_FILE"] = str(settings.params_path)
        os.environ.pop("DUALENGINE_QUERY_LOG_URL", None)


def _deployment_exists(name: str) -> bool:
    from prefect.client.orchestration import get_client

    async def read():
        async with get_client() as client:
            try:
                await client.read_deployment_by_name(name)
                return True
            except Exception:  # noqa: BLE001 - not registered yet
                return False

    return asyncio.run(read())


def test_a_new_filings_are_indexed_hands_free(served, settings):
    before = monitor_result(run_monitor())
    assert before["status"]["knowledge"] == "ok", before["signals"]
    start = datetime.now(UTC)
    source = settings.data_dir / "raw" / "sec10q" / "docs" / SMALLEST_FILING
    shutil.copyfile(source, served["filings"] / SMALLEST_FILING)
    degraded = monitor_result(run_monitor())
    staleness = next(s for s in degraded["signals"] if s["name"] == "staleness")
    assert staleness["status"] == "degraded" and staleness["detail"]["new"]
    assert degraded["events"]["dualengine.knowledge.degraded"] == "emitted"
    # the server stores events asynchronously: wait until it lists the one just emitted
    (event,) = wait_for(
        "the degraded event", lambda: events("dualengine.knowledge.degraded", start)
    )
    assert event.payload["signals"]["staleness"]["status"] == "degraded"
    reindexed = wait_for(
        "the reindex deployment to finish",
        lambda: [
            r for r in finished(flow_runs("reindex/nightly", start)) if r.state.is_completed()
        ],
    )
    assert reindexed[0].created >= event.occurred
    wait_for(
        "no reindex left running",
        lambda: not [r for r in flow_runs("reindex/nightly", start) if not r.state.is_final()],
    )
    after = monitor_result(run_monitor())
    assert next(s for s in after["signals"] if s["name"] == "staleness")["status"] == "ok"
    assert after["status"]["knowledge"] in ("ok", "warn")


def test_b_shifted_queries_retrain_the_behaviour_engine(served, settings):
    from dualengine.api import engine_for
    from dualengine.models import ensure_tiny_model
    from dualengine.settings import Settings
    from tasks import registry
    from tasks.data import read_jsonl, sec10q_paths
    from tasks.generation import load_generator

    name = settings.params()["registry"]["model_name"]
    versions_before = {v.version for v in _versions(name)}
    start = datetime.now(UTC)
    finance = [r["question"] for r in read_jsonl(sec10q_paths(settings.data_dir)[1])][:40]
    generator = load_generator(str(ensure_tiny_model(settings)), None, 128)
    # the scenario's params and query log (the serve process reads the same ones)
    engine = engine_for(Settings(), generator, "shift-test", caller="scenario")
    try:
        for question in finance:
            engine.ask(question, ["public", "finance"])
    finally:
        engine.close()
    result = monitor_result(run_monitor())
    drift = next(s for s in result["signals"] if s["name"] == "query_drift")
    assert drift["status"] == "degraded", drift
    assert result["events"]["dualengine.behaviour.degraded"] == "emitted"
    retrained = wait_for(
        "the retrain deployment to finish",
        lambda: finished(flow_runs("retrain/on-drift", start)),
        timeout=900,
    )
    assert retrained[0].state.is_completed(), retrained[0].state
    new = [v for v in _versions(name) if v.version not in versions_before]
    assert new, "retraining registered a challenger"
    challenger = registry.version_by_alias(name, "challenger")
    assert challenger.version == max(new, key=lambda v: int(v.version)).version
    assert challenger.tags["gate_decision"].startswith(("promoted", "refused"))

    # the same event again within the cooldown: the retrain run starts, skips, trains nothing
    from prefect.events import emit_event

    emit_event(
        event="dualengine.behaviour.degraded",
        resource={"prefect.resource.id": "dualengine.engine.behaviour"},
        payload={"signals": {"test": "repeat"}},
    )
    again = wait_for(
        "the repeated retrain run",
        lambda: finished(flow_runs("retrain/on-drift", start))[1:],
        timeout=600,
    )
    assert again[0].state.is_completed()
    assert len(_versions(name)) == len(versions_before) + len(new)
    (note,) = latest_artifacts(["retrain"])
    assert "skipped" in note.data


def test_c_champion_set_in_mlflow_starts_the_evaluation(served, settings):
    from mlflow import MlflowClient

    name = settings.params()["registry"]["model_name"]
    version = max(_versions(name), key=lambda v: int(v.version)).version
    start = datetime.now(UTC)
    MlflowClient().set_registered_model_alias(name, "champion", version)
    (event,) = wait_for("the promoted event", lambda: events("dualengine.model.promoted", start))
    assert event.payload["version"] == str(version)
    runs = wait_for(
        "the evaluation deployment to finish",
        lambda: finished(flow_runs("evaluate/on-promotion", start)),
        timeout=600,
    )
    assert runs[0].state.is_completed(), runs[0].state
    assert runs[0].parameters["model"] == str(version)


def _versions(name):
    from mlflow import MlflowClient

    return MlflowClient().search_model_versions(f"name='{name}'")
