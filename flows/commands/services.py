"""`dualengine services up | down | status`: the local Prefect, MLflow and Weaviate."""

from __future__ import annotations

from typing import Annotated

import typer

from dualengine import services
from dualengine.settings import get_settings
from flows import render
from flows.commands.options import JsonOption
from flows.commands.runner import fail
from flows.render import console


def up(
    timeout: Annotated[float, typer.Option(help="Seconds to wait for health checks.")] = 240,
    weaviate_nodes: Annotated[
        int | None,
        typer.Option(
            min=1, max=9, help="Weaviate nodes as one cluster (replication factor min(3, N))."
        ),
    ] = None,
    mlflow_backend: Annotated[
        str | None,
        typer.Option(help="sqlite (default) or postgres: PostgreSQL store + S3 artifacts."),
    ] = None,
) -> None:
    """Start Prefect (SQLite), MLflow (SQLite + local artifacts, or PostgreSQL + S3) and
    Weaviate (one node, or a cluster of N)."""
    settings = get_settings()
    update: dict = {}
    if weaviate_nodes is not None:
        update["weaviate_nodes"] = weaviate_nodes
    if mlflow_backend is not None:
        if mlflow_backend not in ("sqlite", "postgres"):
            fail(f"--mlflow-backend {mlflow_backend}: use sqlite or postgres", 2)
        update["mlflow_backend"] = mlflow_backend
    settings = settings.model_copy(update=update)
    try:
        rows = services.up(settings, timeout=timeout, progress=lambda m: console.print(m))
    except Exception as exc:
        fail(exc, 1)
    render.services_table(rows)


def down() -> None:
    """Stop the services that `services up` started (external endpoints are left alone)."""
    services.down(get_settings(), progress=lambda m: console.print(m))


def status(as_json: JsonOption = False) -> None:
    """Health, URL, PID and log of each service; exit code 1 if any is unhealthy."""
    rows = services.status(get_settings())
    if as_json:
        render.as_json(services.status_dicts(rows))
    else:
        render.services_table(rows)
    if not all(r.healthy for r in rows):
        raise typer.Exit(1)
