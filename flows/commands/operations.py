"""Operating the system: the monitor, serving or deploying every flow as a Prefect deployment,
and the status of services, models and index."""

from __future__ import annotations

import contextlib
import sys
from typing import Annotated

import typer

from dualengine.settings import Settings, get_settings
from flows import render
from flows.commands.options import JsonOption, ProfileOption
from flows.commands.runner import connect, connected, fail, report_flow


def monitor(
    profile: ProfileOption = None,
    emit: Annotated[
        bool, typer.Option(help="Emit the degraded / data-updated events (repairs start).")
    ] = True,
    as_json: JsonOption = False,
) -> None:
    """Drift and health signals of both engines (ok / warn / degraded), events on degradation."""
    settings = connected(profile)
    from flows.monitor import monitor_flow

    report_flow(settings, monitor_flow, render.monitor, as_json, emit=emit)


def status(as_json: JsonOption = False) -> None:
    """Services, champion and challenger versions with metrics, and the live index."""
    settings = get_settings()
    from dualengine.status import system_status

    with contextlib.redirect_stdout(sys.stderr):
        report = system_status(settings)
    render.show(report, as_json, render.system_status)


def serve(
    profile: ProfileOption = None,
    webhook: Annotated[
        bool, typer.Option(help="Receive MLflow alias webhooks (model promoted in the UI).")
    ] = True,
    pool: Annotated[
        str | None,
        typer.Option(help="Deploy to this process work pool for `prefect worker start` instead."),
    ] = None,
    only: Annotated[
        list[str] | None, typer.Option(help="With --pool: only these flows (repeatable).")
    ] = None,
) -> None:
    """Serve every flow as a deployment: cron schedules, event triggers, UI forms (blocks)."""
    settings = Settings.for_profile(profile)
    connect(settings)
    from flows.deployments import serve as serve_deployments

    if pool:
        _deploy(settings, pool, only, "process", None)
        return
    serve_deployments(settings, webhook=webhook)


def _deploy(
    settings: Settings, pool: str, only: list[str] | None, pool_type: str, image: str | None
) -> None:
    from flows.deployments import deploy_to_pool

    try:
        ids = deploy_to_pool(settings, pool, only, pool_type=pool_type, image=image)
    except ValueError as exc:
        fail(exc, 2)
    render.deployed(len(ids), pool, pool_type)


def deploy(
    pool: Annotated[str, typer.Option(help="Work pool to create (if missing) and deploy to.")],
    pool_type: Annotated[
        str, typer.Option("--type", help="Work pool type: process or kubernetes.")
    ] = "process",
    image: Annotated[
        str | None,
        typer.Option(help="kubernetes: the dualengine image each flow run starts from."),
    ] = None,
    only: Annotated[list[str] | None, typer.Option(help="Only these flows (repeatable).")] = None,
    profile: ProfileOption = None,
) -> None:
    """Every flow as a deployment on a work pool; `prefect worker start --pool NAME` runs them on
    any machine that reaches the services (training one at a time across all workers)."""
    settings = Settings.for_profile(profile)
    connect(settings)
    _deploy(settings, pool, only, pool_type, image)
