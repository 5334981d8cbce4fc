"""Prefect tasks of the monitor: measure each engine, record the signals, emit events."""

from __future__ import annotations

import hashlib
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from dualengine.models import embedding_model_path
from dualengine.settings import Settings
from dualengine.weaviate_client import weaviate_client
from flows.steps.reindex import evaluate_live, load_eval_sets
from tasks import monitoring
from tasks.data import file_digest, files_version, read_jsonl, sample_dataset_paths
from tasks.drift import DEGRADED, Signal

STEP = {"cache_policy": NO_CACHE, "persist_result": False}
EVENTS = {
    "knowledge": "dualengine.knowledge.degraded",
    "behaviour": "dualengine.behaviour.degraded",
}
DATA_UPDATED = "dualengine.data.updated"


def _cached_embeddings(settings: Settings, key: str, texts: list[str]) -> np.ndarray:
    """Embeddings of a fixed text set, cached in the state folder under a content key."""
    from tasks.embedding import embed_texts

    path = settings.state / "monitor" / f"emb-{key}.npy"
    if path.exists():
        return np.load(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    vectors = np.asarray(embed_texts(embedding_model_path(settings), texts, show=False))
    np.save(path, vectors)
    return vectors


def golden_similarities(settings: Settings, client, collection: str, questions) -> list[float]:
    """Best passage similarity of each golden question (`retrieval.evaluation_groups`)."""
    from tasks.retrieval import best_similarities

    retrieval = settings.config().retrieval
    vectors = _cached_embeddings(
        settings,
        "golden-" + hashlib.sha256("\n".join(questions).encode()).hexdigest()[:12],
        questions,
    )
    return best_similarities(
        client,
        collection,
        list(questions),
        vectors,
        retrieval.alpha,
        retrieval.evaluation_groups,
    )


@task(name="knowledge-signals", **STEP)
def knowledge_signals(
    settings: Settings, corpora: dict[str, str], queries: list[dict[str, Any]]
) -> tuple[list[Signal], dict[str, Any]]:
    """Staleness, golden recall vs promotion, low-score share, query-vs-corpus distance."""
    from tasks.corpus_quality import quarantine
    from tasks.index_store import live_documents
    from tasks.indexing import plan_incremental

    config = settings.config()
    rules, k_rules = config.monitor, config.monitor.knowledge
    docs: list[dict[str, Any]] = []
    for path in corpora.values():
        docs.extend(read_jsonl(Path(path)))
    valid, _ = quarantine(docs, config.validation.model_dump())
    data_version = files_version({k: Path(v) for k, v in corpora.items()})
    with weaviate_client(settings) as client:
        eval_sets = load_eval_sets(settings, rules.golden_questions)
        modes = {"hybrid": config.retrieval.alpha}
        live, manifest, report = evaluate_live(settings, client, eval_sets, modes)
        plan = plan_incremental(live_documents(client.collections.get(live)), valid)
        golden_questions = [q["question"] for items in eval_sets.values() for q in items]
        golden = golden_similarities(settings, client, live, golden_questions)
    metric = config.index.gate_metric
    current = {f"{name}.{metric}": m["hybrid"][metric] for name, m in report.items()}
    min_n = rules.min_queries
    signals = [
        monitoring.staleness(
            plan, data_version, manifest.get("data_version"), k_rules.staleness.model_dump()
        ),
        monitoring.recall_drop(
            current, manifest.get("retrieval") or {}, k_rules.golden_recall_drop.model_dump()
        ),
        monitoring.low_score_share(
            [q["top_similarity"] for q in queries],
            config.answer.min_similarity,
            min_n,
            k_rules.low_score_share.model_dump(),
        ),
        monitoring.corpus_distance(
            [q["top_similarity"] for q in queries],
            golden,
            min_n,
            k_rules.corpus_distance_increase.model_dump(),
        ),
    ]
    context = {
        "live_collection": live,
        "live_data_version": manifest.get("data_version"),
        "data_version": data_version,
        "corpora": corpora,
    }
    return signals, context


@task(name="behaviour-signals", **STEP)
def behaviour_signals(settings: Settings, queries: list[dict[str, Any]]) -> list[Signal]:
    """Query drift vs training questions, golden oracle F1 vs promotion, conflict rate, and
    the share of people's ratings saying "bad"."""
    rules = settings.config().monitor
    b_rules = rules.behaviour
    train_path = sample_dataset_paths(settings.data_dir, settings.params()).train
    reference = _cached_embeddings(
        settings,
        f"train-{file_digest(train_path)[:12]}",
        [r["question"] for r in read_jsonl(train_path)],
    )
    current = np.asarray([q["embedding"] for q in queries if q["embedding"]], dtype=np.float64)
    min_n = rules.min_queries
    f1_now, f1_then = golden_oracle_f1(settings) if rules.golden_f1 else (None, None)
    feedback = b_rules.negative_feedback_rate
    return [
        monitoring.embedding_drift(reference, current, min_n, b_rules.query_drift.model_dump()),
        monitoring.oracle_f1_drop(f1_now, f1_then, b_rules.golden_oracle_f1_drop.model_dump()),
        monitoring.conflict_rate(
            [q["conflict"] for q in queries], min_n, b_rules.conflict_rate.model_dump()
        ),
        monitoring.negative_feedback_rate(
            read_ratings(settings, feedback.window_hours), feedback.model_dump()
        ),
    ]


def golden_oracle_f1(settings: Settings) -> tuple[float | None, float | None]:
    """The champion's F1 with the oracle passage on golden XQuAD questions, and its value at
    promotion (version tag `eval_f1_oracle`); (None, None) while there is no champion."""
    from dualengine.api import load_generator_version
    from flows.steps.evaluate import attribution_items
    from tasks import registry
    from tasks.evaluation import token_f1
    from tasks.raft import split_citation

    config = settings.config()
    champion = registry.version_by_alias(config.registry.model_name, registry.CHAMPION)
    if champion is None or "eval_f1_oracle" not in (champion.tags or {}):
        return None, None
    generator, _ = load_generator_version(settings, str(champion.version))
    items = attribution_items.fn(settings, "xquad", config.monitor.golden_questions)
    profile = settings.training_profile()
    answers = generator.answer_many(
        profile.system_prompt,
        [i["question"] for i in items],
        [i["oracle"] for i in items],
        profile.max_new_tokens,
        raw=True,
    )
    scores = [
        token_f1(split_citation(a)[0], i["answer"]) for a, i in zip(answers, items, strict=True)
    ]
    return sum(scores) / len(scores), float(champion.tags["eval_f1_oracle"])


def read_queries(settings: Settings) -> list[dict[str, Any]]:
    from tasks.query_log import QueryLog

    rules = settings.config().monitor
    log = QueryLog(settings.query_log)
    try:
        since = datetime.now(UTC) - timedelta(hours=rules.window_hours)
        return log.read(since=since, limit=rules.max_queries)
    finally:
        log.close()


def golden_set_info(settings: Settings) -> dict[str, Any]:
    """Size and version of the golden set grown from corrections (tasks/golden.py)."""
    from tasks.golden import GoldenSet

    golden = GoldenSet(settings.state)
    return {"size": len(golden.items()), "version": golden.version()}


def read_ratings(settings: Settings, window_hours: float) -> list[str]:
    from tasks.query_log import QueryLog

    log = QueryLog(settings.query_log)
    try:
        return log.ratings(since=datetime.now(UTC) - timedelta(hours=window_hours))
    finally:
        log.close()


def _emitted_state(settings: Settings) -> tuple[Path, dict[str, Any]]:
    path = settings.state / "monitor" / "emitted.json"
    return path, json.loads(path.read_text()) if path.exists() else {}


@task(name="emit-events", **STEP)
def emit_events(
    settings: Settings, signals: list[Signal], context: dict[str, Any]
) -> dict[str, str]:
    """Degraded engines → `dualengine.<engine>.degraded` with the evidence (once per cooldown);
    a data version the live index has not seen → `dualengine.data.updated` (once per version)."""
    from prefect.events import emit_event

    cooldown = settings.config().monitor.cooldown_minutes * 60
    path, state = _emitted_state(settings)
    outcome: dict[str, str] = {}
    now = time.time()
    for engine, event in EVENTS.items():
        if monitoring.engine_status(signals, engine) != DEGRADED:
            continue
        if now - float(state.get(event, 0)) < cooldown:
            outcome[event] = "suppressed (cooldown)"
            continue
        emit_event(
            event=event,
            resource={"prefect.resource.id": f"dualengine.engine.{engine}"},
            payload={"signals": monitoring.evidence(signals, engine), **context},
        )
        state[event], outcome[event] = now, "emitted"
    version = context.get("data_version")
    fresh = version and version != context.get("live_data_version")
    if fresh and state.get(DATA_UPDATED) != version:
        emit_event(
            event=DATA_UPDATED,
            resource={"prefect.resource.id": f"dualengine.data.{version}"},
            payload=context,
        )
        state[DATA_UPDATED], outcome[DATA_UPDATED] = version, "emitted"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(state))
    if outcome:
        get_run_logger().info("events: %s", outcome)
    return outcome


@task(name="record-monitor", **STEP)
def record_monitor(
    settings: Settings, signals: list[Signal], statuses: dict[str, str], events: dict[str, str]
) -> str:
    """MLflow run in `dualengine-monitoring` and a `monitor-report` Prefect artifact."""
    import mlflow
    from tasks import tracking

    tracking.use_experiment("dualengine-monitoring")
    with mlflow.start_run(run_name=f"monitor-{datetime.now(UTC):%Y%m%dT%H%M}") as run:
        mlflow.set_tags({f"status.{k}": v for k, v in statuses.items()})
        mlflow.log_metrics(
            {f"{s.engine}.{s.name}": float(s.value) for s in signals if s.value is not None}
        )
        mlflow.log_dict(
            {"signals": [s.as_dict() for s in signals], "events": events}, "signals.json"
        )
    rows = "\n".join(
        f"| {s.engine} | {s.name} | {'-' if s.value is None else f'{s.value:.4g}'} | "
        f"{s.warn} / {s.degraded} | **{s.status}** |"
        for s in signals
    )
    create_markdown_artifact(
        key="monitor-report",
        markdown=f"## Monitor: knowledge {statuses['knowledge']}, behaviour "
        f"{statuses['behaviour']}\n\n| engine | signal | value | warn / degraded | status |\n"
        f"|---|---|---|---|---|\n{rows}\n\nEvents: {json.dumps(events) if events else 'none'}"
        f"\n\nMLflow run `{run.info.run_id}`",
        description="Drift and health signals of both engines",
    )
    return run.info.run_id
