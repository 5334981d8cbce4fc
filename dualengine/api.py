"""Python API: open the hybrid answer engine on the running stack and ask questions.

    from dualengine.api import feedback, open_engine
    with open_engine() as engine:
        answer = engine.ask("Who won Super Bowl 50?", groups=["public"])
    feedback(answer.trace_id, good=False, correction="Denver Broncos")

`groups` are the caller's access groups: a list of names; omitted or None → params.yaml
`retrieval.anonymous_groups`; an empty list, a string or a wildcard raises `AccessGroupsError`
(dualengine/resolve.py). `model` is `champion` (default), `challenger`, a version number, or
`base` (no adapter). Until a
challenger has earned `champion`, the base model answers (version "base"): the knowledge
engine keeps serving while the behaviour engine has nothing better to offer.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from dualengine.models import embedding_model_path
from dualengine.resolve import index_alias
from dualengine.settings import Settings, get_settings

if TYPE_CHECKING:
    from tasks.generation import Generator
    from tasks.hybrid import HybridEngine


def load_generator_version(
    settings: Settings, model: str | None = "champion"
) -> tuple[Generator, str]:
    """The generator for a registry alias or version, `base`, or None for the newest
    fine-tuned version (resolved by dualengine.resolve.resolve_generator)."""
    from dualengine.resolve import resolve_generator
    from tasks.generation import load_generator
    from tasks.hardware import configure_threads

    configure_threads(settings.threads())
    choice = resolve_generator(settings, model)
    generator = load_generator(
        choice.base, choice.adapter, settings.context_length(), settings.quantize()
    )
    return generator, choice.version


def engine_for(
    settings: Settings,
    generator: Generator,
    model_version: str,
    caller: str = "api",
    log_queries: bool | None = None,
) -> HybridEngine:
    """An engine around a loaded generator, with its own Weaviate connection and query log
    (unless log_queries, default params.yaml `answer.log_queries`, says otherwise); answers
    are MLflow traces unless params.yaml `answer.trace` or DUALENGINE_TRACING=0 turn it off."""
    from dualengine.weaviate_client import connect
    from tasks.generation import base_of
    from tasks.hybrid import AnswerConfig, HybridEngine
    from tasks.query_log import QueryLog
    from tasks.tracing import AnswerTracer, tracing_enabled_by_env

    config = AnswerConfig.from_params(
        settings.params(),
        settings.training_params(),
        embedding_model_path(settings),
        index_alias(settings),
    )
    if log_queries is None:
        log_queries = settings.config().answer.log_queries
    client = connect(settings)
    return HybridEngine(
        generator,
        client,
        config,
        model_version,
        query_log=QueryLog(settings.query_log) if log_queries else None,
        caller=caller,
        on_close=client.close,
        tracer=AnswerTracer(enabled=settings.config().answer.trace and tracing_enabled_by_env()),
        base_generator=base_of(generator),  # for corpora whose style does not use the adapter
    )


@contextmanager
def open_engine(
    settings: Settings | None = None,
    model: str = "champion",
    caller: str = "api",
    log_queries: bool | None = None,
) -> Iterator[HybridEngine]:
    """A ready engine on the running services (see `dualengine services up`)."""
    from dualengine.endpoints import export_endpoints

    settings = settings or get_settings()
    export_endpoints(settings)
    generator, version = load_generator_version(settings, model)
    engine = engine_for(settings, generator, version, caller, log_queries)
    try:
        yield engine
    finally:
        engine.close()


def feedback(
    trace_id: str,
    good: bool,
    correction: str | None = None,
    user: str | None = None,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """Rate an answer by its `trace_id` (good or bad, a bad one optionally with the right
    answer): MLflow assessments on the trace, the query log, and the golden set for a
    correction. Raises tasks.feedback.FeedbackError for a wrong request, LookupError for an
    unknown trace."""
    from dualengine.rating import rate_answer

    return rate_answer(settings or get_settings(), trace_id, good, not good, correction, user)
