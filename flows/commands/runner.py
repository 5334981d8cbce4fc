"""How a command reaches the services and runs a flow, and its exit-code policy: 2 a service,
model or index is missing (or was lost during the run), 3 invalid data (nothing downstream
ran), 5 an index change refused as unsafe, 6 another run holds the lock."""

from __future__ import annotations

import contextlib
import inspect
import sys
from collections.abc import Callable
from typing import Any, NoReturn

import typer

from dualengine import services
from dualengine.endpoints import Endpoints, export_endpoints
from dualengine.settings import Settings
from flows import render
from flows.render import console

ANSWER_SERVICES = ("mlflow", "weaviate")  # answering never uses Prefect


def fail(message: object, code: int) -> NoReturn:
    """Print `message` in red on stderr and exit with `code`."""
    console.print(f"[red]{message}[/red]")
    raise typer.Exit(code)


def lock_wait(settings: Settings, wait: float | None) -> float:
    return settings.config().index.lock_wait_seconds if wait is None else float(wait)


def require_services(settings: Settings, needed: tuple[str, ...] = services.SERVICE_NAMES) -> None:
    """Exit 2 naming the unreachable services among `needed` (answering needs no Prefect)."""
    down = [s for s in services.status(settings) if not s.healthy and s.name in needed]
    if down:
        names = ", ".join(f"{s.name} ({s.url})" for s in down)
        console.print(
            f"[red]Not reachable: {names}.[/red] Run `dualengine services up` "
            "or set PREFECT_API_URL / MLFLOW_TRACKING_URI / DUALENGINE_WEAVIATE_URL."
        )
        raise typer.Exit(2)


def connect(settings: Settings, needed: tuple[str, ...] = services.SERVICE_NAMES) -> Endpoints:
    """Exit 2 unless `needed` are reachable, then put their endpoints into the environment.
    Import prefect (any flow module) only after this, or it starts a temporary server."""
    require_services(settings, needed)
    return export_endpoints(settings)


def connected(profile: str | None = None) -> Settings:
    """Settings for `profile` once every service is reachable and exported (see `connect`)."""
    settings = Settings.for_profile(profile)
    connect(settings)
    return settings


def run_flow(
    settings: Settings,
    flow: Callable[..., Any],
    lock: tuple[str, float, str] | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """Run `flow` (imported after `connect`) in this process with `kwargs`, and the profile of
    `settings` when the flow takes one, under `lock` = (Prefect concurrency limit, seconds to
    wait, what) if given; library output goes to stderr so that stdout keeps the result."""
    from flows.locks import Busy, exclusive
    from tasks.indexing import IndexSafetyError
    from tasks.validation import DatasetValidationError

    function = getattr(flow, "fn", flow)  # a Prefect flow wraps the function
    if "profile" in inspect.signature(function).parameters:
        kwargs.setdefault("profile", settings.profile)
    try:
        with (
            contextlib.redirect_stdout(sys.stderr),
            exclusive(*lock) if lock else contextlib.nullcontext(),
        ):
            return flow(**kwargs)
    except DatasetValidationError as exc:
        console.print(f"[red]Validation failed; nothing downstream ran.[/red]\n{exc}")
        raise typer.Exit(3) from exc
    except IndexSafetyError as exc:
        fail(exc, 5)
    except Busy as exc:
        fail(exc, 6)
    except Exception as exc:
        lost = [s for s in services.status(settings) if not s.healthy]
        if not lost:
            raise
        names = ", ".join(f"{s.name} ({s.url})" for s in lost)
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        console.print(
            f"[red]{function.__name__} failed: {names} became unreachable "
            f"during the run[/red] ({type(exc).__name__}: {first_line}). Restart it "
            "(`dualengine services up`) and rerun; `finetune --resume` continues from the last "
            "checkpoint."
        )
        raise typer.Exit(2) from exc


def report_flow(
    settings: Settings,
    flow: Callable[..., Any],
    show: Callable[[dict[str, Any]], None],
    as_json: bool = False,
    lock: tuple[str, float, str] | None = None,
    **kwargs: Any,
) -> None:
    """Run a flow and show its result (as JSON with --json); a missing model, index or service
    exits 2 with the message."""
    try:
        result = run_flow(settings, flow, lock, **kwargs)
    except LookupError as exc:
        fail(exc, 2)
    render.show(result, as_json, show)
