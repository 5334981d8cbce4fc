"""Prefect tasks: thin wrappers over tasks/ that add tracking and a readable artifact each."""

from __future__ import annotations

import json
import random
import tempfile
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from dualengine.models import base_model_path, embedding_model_path
from dualengine.settings import Settings
from dualengine.weaviate_client import weaviate_client
from tasks import registry, tracking
from tasks.data import DatasetPaths, data_version, file_digest, read_jsonl, sample_dataset_paths
from tasks.validation import DatasetValidationError, validate_file

STEP = {"cache_policy": NO_CACHE, "persist_result": False}


def _sample(records: list[dict[str, Any]], n: int, seed: int) -> list[dict[str, Any]]:
    if n >= len(records):
        return list(records)
    return random.Random(seed).sample(records, n)


@task(name="prepare-data", **STEP)
def prepare_data(
    settings: Settings, corpus: str | None, train: str | None, evaluation: str | None
) -> tuple[DatasetPaths, str]:
    """The run's three datasets (the bundled XQuAD sample unless paths are given) and version."""
    if corpus or train or evaluation:
        if not (corpus and train and evaluation):
            raise ValueError("give all three of corpus, train and eval, or none of them")
        paths = DatasetPaths(Path(corpus), Path(train), Path(evaluation))
    else:
        paths = sample_dataset_paths(settings.data_dir, settings.params())
    version = data_version(paths)
    create_markdown_artifact(
        key="data-version",
        markdown="\n".join(
            [f"## Data version `{version}`", "", "| dataset | file | md5 |", "|---|---|---|"]
            + [f"| {n} | `{p}` | `{file_digest(Path(p))}` |" for n, p in paths.as_dict().items()]
        ),
        description="Datasets used by this run",
    )
    return paths, version


@task(name="validate-datasets", **STEP)
def validate_datasets(settings: Settings, paths: DatasetPaths, corpora: dict[str, str]) -> None:
    """Great Expectations gate on the QA sets: a failure stops the flow before any change.

    Questions must point at passages of the corpora; the corpus itself is checked document by
    document in `validate-corpus`, which quarantines bad documents instead of stopping.
    """
    rules = settings.params()["validation"]
    known: list[str] = []
    for path in corpora.values():
        known.extend(str(r.get("id")) for r in read_jsonl(Path(path)))
    reports = [
        validate_file("train", paths.train, rules, known),
        validate_file("eval", paths.eval, rules, known),
    ]
    ok = all(r.success for r in reports)
    create_markdown_artifact(
        key="validation-report",
        markdown=f"## Great Expectations: {'passed' if ok else 'FAILED'}\n\n"
        + "\n\n".join(r.markdown() for r in reports),
        description="Dataset validation",
    )
    if not ok:
        raise DatasetValidationError(reports)
    get_run_logger().info("training and evaluation sets passed validation")


def _retrieve_contexts(settings: Settings, alias: str, questions: list[str], k: int):
    from tasks.embedding import embed_texts
    from tasks.retrieval import retrieve_many

    params = settings.params()["retrieval"]
    vectors = embed_texts(embedding_model_path(settings), questions, show=False)
    with weaviate_client(settings) as client:
        return retrieve_many(client, alias, questions, vectors, k, params["alpha"])


@task(name="finetune-lora", **STEP)
def finetune(
    settings: Settings, paths: DatasetPaths, version: str, index: dict[str, Any]
) -> dict[str, Any]:
    """LoRA fine-tune on training questions with their retrieved passages; logged to MLflow."""
    import mlflow
    from tasks.training import configure_threads, encode_example, load_tokenizer, train_lora

    tp = settings.training_params()
    retrieval = settings.params()["retrieval"]
    base = base_model_path(settings)
    configure_threads(settings.torch_threads)
    train_items = _sample(read_jsonl(paths.train), tp["train_examples"], tp["seed"])
    contexts = _retrieve_contexts(
        settings,
        index["alias"],
        [i["question"] for i in train_items],
        retrieval["context_passages"],
    )
    tokenizer = load_tokenizer(base)
    examples = [
        encode_example(
            tokenizer,
            tp["system_prompt"],
            item["question"],
            [p.as_dict() for p in ctx],
            item["answer"],
            tp["max_length"],
        )
        for item, ctx in zip(train_items, contexts, strict=True)
    ]
    tracking.use_experiment(tracking.BEHAVIOUR_EXPERIMENT)
    run = mlflow.start_run(run_name=f"lora-{settings.profile}-{version}")
    with run:
        mlflow.log_params(
            {k: v for k, v in tp.items() if k != "system_prompt"}
            | {"base_model": base, "profile": settings.profile}
        )
        mlflow.set_tags(
            {
                "data_version": version,
                "index_version": index["manifest"]["index_version"],
                "index_collection": index["collection"],
                "base_model": base,
            }
        )
        tracking.log_dataset(train_items, paths.train, "train", "training", version)
        adapter_dir = Path(tempfile.mkdtemp(prefix="dualengine-adapter-"))
        result = train_lora(
            base,
            examples,
            tp,
            adapter_dir,
            on_step=lambda step, loss: mlflow.log_metric("train_loss", loss, step=step),
        )
        mlflow.log_metrics(
            {
                "train_tokens_per_second": result.tokens_per_second,
                "train_seconds": result.seconds,
                "train_steps": result.steps,
                "trainable_params": result.trainable_params,
            }
        )
        mlflow.log_artifacts(str(adapter_dir), artifact_path="adapter")
    summary = {
        "run_id": run.info.run_id,
        "adapter_dir": str(adapter_dir),
        "base_model": base,
        "steps": result.steps,
        "final_loss": result.final_loss,
        "tokens_per_second": round(result.tokens_per_second, 1),
        "first_loss": result.losses[0] if result.losses else None,
    }
    create_markdown_artifact(
        key="lora-training",
        markdown="## LoRA fine-tuning\n\n| field | value |\n|---|---|\n"
        + "\n".join(f"| {k} | `{v}` |" for k, v in summary.items()),
        description="Behaviour engine training",
    )
    return summary


@task(name="evaluate-held-out", **STEP)
def evaluate(
    settings: Settings,
    paths: DatasetPaths,
    version: str,
    index: dict[str, Any],
    training: dict[str, Any],
) -> dict[str, float]:
    """Answer F1 / EM with retrieved context and retrieval recall@k on held-out articles."""
    import mlflow
    from tasks.evaluation import evaluate_answers
    from tasks.generation import load_generator

    tp = settings.training_params()
    retrieval = settings.params()["retrieval"]
    items = _sample(read_jsonl(paths.eval), tp["eval_examples"], tp["seed"])
    k = retrieval["top_k"]
    hits = _retrieve_contexts(settings, index["alias"], [i["question"] for i in items], k)
    generator = load_generator(training["base_model"], training["adapter_dir"], tp["max_length"])
    result = evaluate_answers(
        generator,
        tp["system_prompt"],
        items,
        [[p.as_dict() for p in h[: retrieval["context_passages"]]] for h in hits],
        [[p.passage_id for p in h] for h in hits],
        k,
        tp["max_new_tokens"],
    )
    with mlflow.start_run(run_id=training["run_id"]):
        mlflow.log_metrics(result.metrics())
        mlflow.log_table(
            {key: [r[key] for r in result.rows] for key in result.rows[0]}, "eval_predictions.json"
        )
        tracking.log_dataset(items, paths.eval, "eval", "evaluation", version)
    create_table_artifact(
        key="held-out-answers",
        table=result.rows[:25],
        description=f"Held-out answers: F1 {result.f1:.3f}, EM {result.em:.3f}, "
        f"recall@{k} {result.recall_at_k:.3f}",
    )
    return result.metrics()


@task(name="register-and-promote", **STEP)
def register_and_promote(
    settings: Settings,
    version: str,
    index: dict[str, Any],
    training: dict[str, Any],
    metrics: dict[str, float],
) -> dict[str, Any]:
    """Register the adapter, alias it `challenger`, and `champion` if it passes the gate."""
    reg = settings.params()["registry"]
    tags = {
        "data_version": version,
        "index_version": index["manifest"]["index_version"],
        "base_model": training["base_model"],
        "profile": settings.profile,
    } | metrics
    model_version = registry.register_adapter(
        reg["model_name"],
        training["run_id"],
        "adapter",
        tags,
        description=f"LoRA adapter trained on data {version} against index {index['collection']}",
    )
    decision = registry.promote(
        reg["model_name"], model_version, reg["gate_metric"], float(reg["gate_margin"])
    )
    create_markdown_artifact(
        key="promotion-decision",
        markdown=f"## Promotion decision for `{reg['model_name']}` v{model_version}\n\n"
        + "\n".join(f"- **{k}**: {v}" for k, v in decision.as_dict().items()),
        description="Gate decision",
    )
    return decision.as_dict()


def load_champion(settings: Settings):
    """The champion's generator and model version (downloaded once per version)."""
    from tasks.generation import load_generator

    reg = settings.params()["registry"]
    version, adapter = registry.download_version(
        reg["model_name"], registry.CHAMPION, settings.cache_dir / "adapters"
    )
    base = (version.tags or {}).get("base_model")
    if not base or (base.startswith("/") and not Path(base).exists()):
        base = base_model_path(settings)
    generator = load_generator(base, adapter, settings.training_params()["max_length"])
    return generator, str(version.version)


def answer(settings: Settings, question: str, groups: list[str] | None) -> dict[str, Any]:
    """Answer from the champion adapter and the live index (plain function, used by the CLI)."""
    from tasks.answer import answer_question

    params = settings.params()
    tp = settings.training_params()
    generator, model_version = load_champion(settings)
    with weaviate_client(settings) as client:
        result = answer_question(
            client,
            generator,
            params["index"]["alias"],
            embedding_model_path(settings),
            question,
            params,
            tp["system_prompt"],
            tp["max_new_tokens"],
            groups,
            model_version,
        )
    return result.as_dict()


@task(name="answer-sample-question", **STEP)
def answer_sample(settings: Settings, question: str, groups: list[str] | None) -> dict[str, Any]:
    result = answer(settings, question, groups)
    rows = "\n".join(
        f"| `{c['passage_id']}` | {c['title']} | {c['score']} | {c['supports_answer']} |"
        for c in result["citations"]
    )
    create_markdown_artifact(
        key="sample-answer",
        markdown=f"## {question}\n\n**Answer:** {result['answer']}\n\n"
        f"Model version {result['model_version']}, index `{result['index_collection']}`, "
        f"timings {json.dumps(result['timings_ms'])}\n\n"
        "| passage | title | score | supports answer |\n|---|---|---|---|\n" + rows,
        description="Hybrid answer with citations",
    )
    return result
