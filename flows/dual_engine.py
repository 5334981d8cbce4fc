"""The dual-engine flow: validate → index → RAFT data → fine-tune → gate → answer."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from dualengine.settings import Settings
from flows.locks import REINDEX_LIMIT, exclusive
from flows.steps import data, finetune, gate, reindex, serving

DEFAULT_QUESTION = "What did the Normans' Viking ancestors raid before settling in Normandy?"


@flow(name="dual-engine", log_prints=True)
def dual_engine_flow(
    profile: str | None = None,
    corpus: str | None = None,
    train: str | None = None,
    eval: str | None = None,  # noqa: A002 - the CLI option and the Prefect form field
    question: str = DEFAULT_QUESTION,
    groups: list[str] | None = None,
) -> dict[str, Any]:
    """Run the whole lifecycle once on the given datasets (default: the bundled samples)."""
    settings = Settings.for_profile(profile)
    logger = get_run_logger()
    paths, version = data.prepare_data(settings, corpus, train, eval)
    logger.info("data version %s", version)
    corpora = reindex.resolve_corpora(settings, [corpus] if corpus else None)
    data.validate_datasets(settings, paths, corpora)
    docs, quarantined = reindex.validate_corpus(settings, corpora)
    with exclusive(REINDEX_LIMIT, settings.config().index.lock_wait_seconds, "re-index"):
        index = reindex.reindex_knowledge(settings, docs, corpora, False, quarantined)
    if not index["gate"].get("passed", True):
        logger.warning("index rebuild refused by the gate; training against the live index")
    live = {
        "collection": index["live_collection"],
        "index_version": index["manifest"].get("index_version", ""),
    }
    raft = finetune.build_raft_data(settings, paths)
    finetune.validate_training_data(settings, raft)
    training = finetune.train_adapter(settings, raft, live, version)
    challenger = finetune.register_challenger(settings, training, live, version)
    decision = gate.promotion_gate(settings, paths, challenger)
    hybrid = serving.register_hybrid_model(settings)
    answer = data.answer_sample(
        settings, question, groups or settings.config().retrieval.default_groups
    )
    summary = {
        "data_version": version,
        "profile": settings.profile,
        "index": {k: index[k] for k in ("alias", "objects", "mode", "quarantined", "data_version")}
        | live,
        "training": {
            k: training[k] for k in ("run_id", "steps", "final_loss", "tokens_per_second")
        },
        "metrics": decision["metrics"],
        "decision": {k: v for k, v in decision.items() if k != "table"},
        "gate_table": decision["table"],
        "answer": answer,
        "hybrid": hybrid,
    }
    create_markdown_artifact(
        key="dual-engine-summary",
        markdown=(
            f"# Dual-engine run ({settings.profile})\n\n"
            f"- data version `{version}`\n- live index `{live['collection']}` "
            f"({index['objects']} objects, {index['mode']}) behind alias `{index['alias']}`\n"
            f"- challenger v{challenger}: "
            + ", ".join(f"{k} {v:.3f}" for k, v in decision["metrics"].items())
            + f"\n- champion: v{decision['champion_after']} "
            f"({'promoted' if decision['promoted'] else 'unchanged'}: {decision['reason']})\n"
            + f"- served hybrid model v{hybrid['hybrid_version']} "
            f"(generator {hybrid['generator_version']})\n"
            + f"- sample answer (model {answer['model_version']}): **{answer['answer']}** citing "
            + ", ".join(f"`{c['passage_id']}`" for c in answer["citations"])
        ),
        description="What this run changed",
    )
    return summary
