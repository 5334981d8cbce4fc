"""The command line's flow runner and exit-code policy without services: the profile is a flow
parameter (never written into the environment), and each failure has its exit code."""

from __future__ import annotations

import json
import os

import pytest
import typer
from typer.testing import CliRunner

from dualengine import services
from dualengine.endpoints import free_port
from dualengine.settings import Settings
from flows import render
from flows.commands.runner import report_flow, run_flow
from flows.locks import Busy
from tasks.indexing import IndexSafetyError
from tasks.validation import DatasetValidationError


class FakeFlow:
    """Callable like a Prefect flow, with the function under `.fn`."""

    def __init__(self, fn):
        self.fn = fn

    def __call__(self, **kwargs):
        return self.fn(**kwargs)


def takes_profile(profile: str | None = None, steps: int = 0) -> dict:
    return {"profile": profile, "steps": steps}


def takes_no_profile(steps: int = 0) -> dict:
    return {"steps": steps}


def test_for_profile_overrides_the_environment_only_when_given(monkeypatch):
    monkeypatch.setenv("DUALENGINE_PROFILE", "gpu")
    assert Settings.for_profile(None).profile == "gpu"
    assert Settings.for_profile("tiny").profile == "tiny"
    assert os.environ["DUALENGINE_PROFILE"] == "gpu"


def test_a_flow_that_takes_a_profile_gets_the_settings_profile_and_others_do_not():
    settings = Settings.for_profile("gpu")
    assert run_flow(settings, FakeFlow(takes_profile), steps=3) == {"profile": "gpu", "steps": 3}
    assert run_flow(settings, takes_profile, profile="tiny")["profile"] == "tiny"
    assert run_flow(settings, FakeFlow(takes_no_profile), steps=2) == {"steps": 2}


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (DatasetValidationError([]), 3),
        (IndexSafetyError("would delete 90% of the live objects"), 5),
        (Busy("re-index: another run holds dualengine-reindex"), 6),
        (LookupError("model 'x' has no challenger"), 2),
    ],
    ids=["invalid-data", "unsafe-index", "busy", "missing"],
)
def test_each_failure_has_its_exit_code(error, code):
    def fails(**_):
        raise error

    with pytest.raises(typer.Exit) as raised:
        report_flow(Settings(), FakeFlow(fails), print)
    assert raised.value.exit_code == code


def test_a_failure_while_the_services_are_gone_names_them_and_exits_2(
    monkeypatch, tmp_path, capsys
):
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    ports = {f"{name}_port": free_port() for name in ("prefect", "mlflow", "weaviate")}
    settings = Settings(state_dir=tmp_path, weaviate_grpc_port=free_port(), **ports)

    def crashes(**_):
        raise ConnectionError("connection refused\nmore detail")

    with pytest.raises(typer.Exit) as raised:
        run_flow(settings, FakeFlow(crashes))
    assert raised.value.exit_code == 2
    err = capsys.readouterr().err
    assert "crashes failed" in err and "became unreachable" in err and "weaviate" in err
    assert "ConnectionError: connection refused" in err and "more detail" not in err


def test_a_failure_with_the_services_up_is_not_hidden(monkeypatch):
    monkeypatch.setattr(services, "status", lambda settings: [])

    def crashes(**_):
        raise ValueError("a bug")

    with pytest.raises(ValueError, match="a bug"):
        run_flow(Settings(), FakeFlow(crashes))


def test_report_flow_prints_json_or_shows_the_result(capsys):
    shown = []
    report_flow(Settings(), FakeFlow(takes_no_profile), shown.append, steps=4)
    assert shown == [{"steps": 4}] and capsys.readouterr().out == ""
    report_flow(Settings(), FakeFlow(takes_no_profile), shown.append, True, steps=5)
    assert json.loads(capsys.readouterr().out) == {"steps": 5} and len(shown) == 1


def test_a_command_with_a_profile_leaves_the_environment_alone():
    from flows.cli import app

    before = os.environ.get("DUALENGINE_PROFILE")
    result = CliRunner().invoke(app, ["ask", "Who?", "--profile", "gpu", "--group", "*"])
    assert result.exit_code == 2, result.output  # refused before any service is touched
    assert os.environ.get("DUALENGINE_PROFILE") == before


def test_tables_render_the_results_of_monitor_and_evaluate(capsys):
    render.monitor(
        {
            "signals": [
                {
                    "engine": "knowledge",
                    "name": "staleness_days",
                    "value": 3.14159,
                    "warn": 7,
                    "degraded": 30,
                    "status": "ok",
                },
                {
                    "engine": "behaviour",
                    "name": "golden_f1",
                    "value": None,
                    "warn": 0.5,
                    "degraded": 0.3,
                    "status": "warn",
                },
            ],
            "status": {"knowledge": "ok", "behaviour": "warn"},
            "events": {},
        }
    )
    from tasks.attribution import GAP_METRICS, METRICS

    row = {m: 0.5 for m in METRICS} | {f"{m}_low": 0.4 for m in METRICS}
    row |= {f"{m}_high": 0.6 for m in METRICS}
    gap = {m: {"mean": 0.1, "low": -0.05, "high": 0.2} for m in GAP_METRICS}
    render.attribution(
        {
            "sets": [
                {
                    "set": "xquad",
                    "rows": [row | {"model": "base", "context": "oracle"}],
                    "gaps": {"fine-tuning": gap},
                    "diagnosis": "retrieval is the bottleneck",
                    "conflict_rate": 0.25,
                }
            ],
            "html": "report.html",
            "run_id": "abc",
        }
    )
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert "staleness_days" in text and "3.142" in text and "golden_f1" in text
    assert "0.500 [0.400, 0.600]" in text and "+0.100 [-0.050, +0.200]" in text
    assert "retrieval is the bottleneck" in text and "report: report.html (MLflow run abc)" in text
