"""Shared fixtures. The test process gets its own state folder and free ports before anything
imports prefect or mlflow; integration tests then start one real Prefect, MLflow and Weaviate
for the whole session and stop them at the end."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from dualengine import endpoints, services

_STATE = Path(tempfile.mkdtemp(prefix="dualengine-tests-"))
_PORTS = {
    "DUALENGINE_PREFECT_PORT": endpoints.free_port(),
    "DUALENGINE_MLFLOW_PORT": endpoints.free_port(),
    "DUALENGINE_WEAVIATE_PORT": endpoints.free_port(),
    "DUALENGINE_WEAVIATE_GRPC_PORT": endpoints.free_port(),
}
os.environ.update({k: str(v) for k, v in _PORTS.items()})
os.environ["DUALENGINE_STATE_DIR"] = str(_STATE / "state")
os.environ["DUALENGINE_MLFLOW_STORE"] = str(_STATE / "mlflow")
os.environ["DUALENGINE_PROFILE"] = "tiny"
os.environ["DUALENGINE_RAFT_DIR"] = str(_STATE / "raft")
os.environ["DUALENGINE_TORCH_THREADS"] = "1"
os.environ["PREFECT_HOME"] = str(_STATE / "prefect-client")
os.environ["PREFECT_API_URL"] = f"http://127.0.0.1:{_PORTS['DUALENGINE_PREFECT_PORT']}/api"
os.environ["MLFLOW_TRACKING_URI"] = f"http://127.0.0.1:{_PORTS['DUALENGINE_MLFLOW_PORT']}"
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.pop("DUALENGINE_WEAVIATE_URL", None)


def _test_params() -> Path:
    """params.yaml with the XQuAD sample only (the SEC corpus has its own, smaller tests)."""
    import yaml

    params = yaml.safe_load((Path(__file__).parent.parent / "params.yaml").read_text())
    params["knowledge"] = {"corpora": ["xquad"], "eval_sets": ["xquad"]}
    params["index"]["gate_max_questions"] = 60
    params["evaluation"] |= {"sets": ["xquad"], "questions": 8}
    path = _STATE / "params.yaml"
    path.write_text(yaml.safe_dump(params, allow_unicode=True))
    return path


os.environ["DUALENGINE_PARAMS_FILE"] = str(_test_params())


def _export_credentials() -> None:
    """Generate the stack's secrets now and export them, as `services up` and the CLI do, so
    that prefect and mlflow (imported later by test modules) send them; the stack is the
    default authenticated one."""
    from dualengine.credentials import local_secrets
    from dualengine.settings import get_settings

    local_secrets(get_settings())
    endpoints.export_endpoints(get_settings())


_export_credentials()


@pytest.fixture(scope="session")
def settings():
    from dualengine.settings import get_settings

    return get_settings()


@pytest.fixture(scope="session")
def stack(settings):
    """Real Prefect, MLflow and Weaviate processes on free loopback ports for the session."""
    try:
        services.up(settings, timeout=600, progress=lambda m: None)  # a loaded CI box
        yield endpoints.resolve_endpoints(settings)
    finally:
        services.down(settings, progress=lambda m: None)


@pytest.fixture(scope="session")
def weaviate(stack, settings):
    from dualengine.weaviate_client import connect

    client = connect(settings)
    yield client
    client.close()


@pytest.fixture(scope="session")
def first_run(stack, settings):
    """One `dualengine run --profile tiny` on the session's servers, shared by the e2e and
    fault tests (live index, champion, registered hybrid)."""
    import json
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "flows", "run", "--profile", "tiny", "--json"],
        capture_output=True,
        text=True,
        check=False,
        timeout=1200,
    )
    assert out.returncode == 0, f"dualengine run exited {out.returncode}:\n{out.stderr[-4000:]}"
    result = json.loads(out.stdout)
    # the aliases as the run left them: later scenario tests (feedback loop, drift retrain)
    # register challengers of their own on the same session registry
    from tasks import registry

    name = settings.params()["registry"]["model_name"]
    result["aliases_after_run"] = {
        alias: getattr(registry.version_by_alias(name, alias), "version", None)
        for alias in ("champion", "challenger")
    }
    return result


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_STATE, ignore_errors=True)
