"""Prefect task of the promotion gate: challenger vs champion vs base on held-out questions;
`champion` moves only on evidence (the decision itself: tasks.gate)."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from dualengine.settings import Settings
from flows.steps.heldout import gate_items
from tasks import registry, tracking
from tasks.data import DatasetPaths, files_version

STEP = {"cache_policy": NO_CACHE, "persist_result": False}


def _generator(base: str, adapter: str | None, max_length: int, quantize: str = "none"):
    from tasks.generation import load_generator

    return load_generator(base, adapter, max_length, quantize)


def base_score_key(
    settings: Settings, paths: DatasetPaths, base: str, items: list[dict[str, Any]]
) -> dict[str, Any]:
    """What the base model's gate scores depend on: its weights, the held-out set, the index
    version, the questions with their three contexts, and the scoring parameters."""
    from dualengine.resolve import index_alias, live_index
    from dualengine.weaviate_client import weaviate_client
    from tasks.score_cache import digest, model_digest

    profile = settings.training_profile()
    with weaviate_client(settings) as client:
        collection = live_index(client, index_alias(settings), required=False)
    fields = ("question", "answer", "oracle_id", "retrieved", "oracle", "missing")
    return {
        "kind": "gate-base",
        "base_model": model_digest(base),
        "held_out": files_version({"eval": paths.eval}),
        "index": collection or "-",
        "inputs": digest([{k: i.get(k) for k in fields} for i in items]),
        "params": digest(
            {
                "system_prompt": profile.system_prompt,
                "max_new_tokens": profile.max_new_tokens,
                "context_length": profile.context_tokens,
                "quantize": settings.quantize(),
            }
        ),
    }


@task(name="promotion-gate", **STEP)
def promotion_gate(settings: Settings, paths: DatasetPaths, challenger: str) -> dict[str, Any]:
    """Challenger vs champion vs base on held-out questions; champion moves only on evidence."""
    import mlflow
    from dualengine.resolve import resolve_generator
    from tasks import score_cache
    from tasks.gate import ModelScores, decide_promotion, score_model
    from tasks.golden import GoldenSet
    from tasks.hardware import configure_threads
    from tasks.retrieval import recall_at_k

    configure_threads(settings.threads())
    config = settings.config()
    profile = settings.training_profile()
    reg = config.registry
    name = reg.model_name
    items = gate_items(settings, paths, profile.eval_examples)
    contexts = {k: [i[k] for i in items] for k in ("retrieved", "oracle", "missing")}
    chall = resolve_generator(settings, challenger)
    base = chall.base  # every model is scored on the challenger's base model

    def score(label: str, version: str | None, adapter: str | None):
        generator = _generator(base, adapter, profile.context_tokens, settings.quantize())
        return score_model(
            label,
            version,
            generator,
            profile.system_prompt,
            items,
            contexts["retrieved"],
            contexts["oracle"],
            contexts["missing"],
            profile.max_new_tokens,
        )

    scores = {"challenger": score("challenger", challenger, chall.adapter)}
    base_scores, base_source = score_cache.cached(
        base_score_key(settings, paths, base, items),
        lambda: score("base", None, None).per_question,
    )
    scores["base"] = ModelScores("base", None, base_scores)
    current = registry.version_by_alias(name, registry.CHAMPION)
    if current is not None and str(current.version) != challenger:
        champ = resolve_generator(settings, str(current.version))
        scores["champion"] = score("champion", str(current.version), champ.adapter)
    rivals = [s for k, s in scores.items() if k != "challenger"]
    decision = decide_promotion(
        scores["challenger"],
        rivals,
        profile.gate_metric,
        reg.gate_margin,
        reg.guardrail_tolerance,
        profile.seed,
        reg.bootstrap_samples,
        tuple(reg.guardrails),
    )
    golden = [i for i in items if i.get("golden")]
    k = config.retrieval.top_k
    recall = recall_at_k([i["retrieved_ids"] for i in items], [i["relevant_ids"] for i in items], k)
    measured = scores["challenger"]
    metrics = {
        "eval_f1": measured.mean("f1_retrieved"),
        "eval_em": measured.mean("em_retrieved"),
        "eval_f1_oracle": measured.mean("f1_oracle"),
        "eval_nll": measured.mean("nll"),
        "eval_format_ok": measured.mean("format_ok"),
        "eval_refusal_when_missing": measured.mean("refusal_when_missing"),
        f"retrieval_recall_at_{k}": recall,
        "gate_golden_questions": float(len(golden)),
    }
    before = str(current.version) if current else None
    if decision.promote:
        registry.set_alias(name, registry.CHAMPION, challenger)
    client = mlflow.MlflowClient()
    for key, value in metrics.items():
        client.set_model_version_tag(name, challenger, key, f"{value:.6f}")
    golden_version = GoldenSet(settings.state).version() if golden else None
    client.set_model_version_tag(name, challenger, "golden_set_version", golden_version or "-")
    client.set_model_version_tag(
        name,
        challenger,
        "gate_decision",
        ("promoted: " if decision.promote else "refused: ") + decision.reason[:4000],
    )
    with mlflow.start_run(run_id=chall.run_id):
        mlflow.log_metrics(metrics)
        mlflow.log_dict(
            decision.as_dict()
            | {"base_scores": base_source, "training_seed": profile.seed, "interval": "paired BCa"},
            "gate_decision.json",
        )
        tracking.log_dataset(
            [{k: v for k, v in i.items() if k in ("id", "question", "answer")} for i in items],
            paths.eval,
            "eval",
            "evaluation",
            files_version({"eval": paths.eval}),
        )
        if golden:
            tracking.log_dataset(
                [{k: i[k] for k in ("id", "question", "answer", "trace_id")} for i in golden],
                GoldenSet(settings.state).path,
                "golden",
                "evaluation",
                golden_version,
            )
    create_table_artifact(
        key="gate-scores",
        table=decision.table,
        description="Held-out scores, mean [95% BCa interval]",
    )
    create_markdown_artifact(
        key="promotion-decision",
        markdown=decision.markdown(name, challenger, profile.seed, base_source),
        description="Gate decision with its evidence",
    )
    get_run_logger().info("gate: %s", decision.reason)
    return {
        "model_name": name,
        "challenger_version": challenger,
        "champion_before": before,
        "champion_after": challenger if decision.promote else before,
        "promoted": decision.promote,
        "reason": decision.reason,
        "metrics": metrics,
        "table": decision.table,
        "gains": decision.gains,
        "base_scores": base_source,
    }
