"""Answering and rating: `ask`, `feedback`, the served pyfunc (`serve-model`) and the web page
(`ui`). Answering needs MLflow and Weaviate only, a rating only MLflow."""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Annotated

import typer

from dualengine.endpoints import free_port
from dualengine.settings import Settings, get_settings
from flows import render
from flows.commands.options import JsonOption, ProfileOption
from flows.commands.runner import ANSWER_SERVICES, connect, fail, require_services
from flows.render import console


def ask(
    question: Annotated[str, typer.Argument(help="The question.")],
    groups: Annotated[
        list[str] | None,
        typer.Option(
            "--group",
            "-g",
            help="Caller's access groups (repeatable); default: retrieval.default_groups.",
        ),
    ] = None,
    conflict_check: Annotated[
        bool | None,
        typer.Option(
            "--conflict-check/--no-conflict-check",
            help="Also answer closed-book and flag factual conflicts (default: params.yaml).",
        ),
    ] = None,
    profile: ProfileOption = None,
    as_json: JsonOption = False,
) -> None:
    """Answer from the champion adapter and the live index, with cited passages."""
    from dualengine.resolve import AccessGroupsError, caller_groups

    settings = Settings.for_profile(profile)
    retrieval = settings.config().retrieval
    try:  # checked before any service or model is touched
        groups = caller_groups(groups or retrieval.default_groups, retrieval.anonymous_groups)
    except AccessGroupsError as exc:
        fail(f"--group: {exc}", 2)
    connect(settings, ANSWER_SERVICES)
    from flows.steps.data import answer

    try:
        with contextlib.redirect_stdout(sys.stderr):
            result = answer(settings, question, groups, conflict_check=conflict_check)
    except LookupError as exc:
        fail(exc, 2)
    render.show(result, as_json, render.answer)


def feedback(
    trace_id: Annotated[str, typer.Argument(help="The answer's trace id (ask --json → trace_id).")],
    good: Annotated[bool, typer.Option("--good", help="The answer is right.")] = False,
    bad: Annotated[bool, typer.Option("--bad", help="The answer is wrong.")] = False,
    correction: Annotated[
        str | None,
        typer.Option(help="With --bad: the right answer (becomes a candidate golden question)."),
    ] = None,
    user: Annotated[str | None, typer.Option(help="Who rates (default: the OS user).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Rate an answer: MLflow assessments on its trace, the query log, and the golden set."""
    from dualengine.rating import rate_answer
    from tasks.feedback import FeedbackError, parse_rating

    settings = get_settings()
    try:
        limit = settings.config().validation.answer_max_chars
        parse_rating(trace_id, good, bad, correction, user or "-", limit)
        require_services(settings, ("mlflow",))  # a rating needs only MLflow
        with contextlib.redirect_stdout(sys.stderr):
            result = rate_answer(settings, trace_id, good, bad, correction, user)
    except (FeedbackError, LookupError) as exc:
        fail(exc, 2)
    render.show(result, as_json, render.rating)


def serve_model(
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 5055,
    version: Annotated[str, typer.Option(help="Hybrid model alias or version.")] = "champion",
    workers: Annotated[int, typer.Option(help="Server worker processes.")] = 1,
    host: Annotated[
        str, typer.Option(help="Address to bind (0.0.0.0 only inside a container).")
    ] = "127.0.0.1",
) -> None:
    """Serve the registered hybrid model with `mlflow models serve` (POST /invocations)."""
    from dualengine.hybrid_model import serve_command, serve_env
    from dualengine.model_signing import ModelSignatureError

    settings = get_settings()
    connect(settings, ANSWER_SERVICES)
    try:
        command = serve_command(settings, port, version, workers, host=host)
    except ModelSignatureError as exc:
        fail(exc, 2)
    console.print(" ".join(command))
    os.execvpe(command[0], command, serve_env())


def ui(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1 (0 = a free one).")] = 8765,
    model: Annotated[str, typer.Option(help="champion, challenger, a version or base.")] = (
        "champion"
    ),
    profile: ProfileOption = None,
) -> None:
    """The web page: pick groups, ask, see cited quotes, rate; /operator for the operator view."""
    settings = Settings.for_profile(profile)
    require_services(settings, ANSWER_SERVICES)
    from dualengine.webapp import serve as serve_ui

    port = port or free_port()
    console.print(f"dualengine ui on http://127.0.0.1:{port} (operator view: /operator)")
    serve_ui(settings, port, model)
