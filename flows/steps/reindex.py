"""Prefect tasks of the knowledge engine: corpus loading, quarantine, re-index, evaluation."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from dualengine.models import embedding_model_id, embedding_model_path
from dualengine.settings import Settings
from dualengine.weaviate_client import weaviate_client
from tasks import tracking
from tasks.corpus_quality import quarantine, quarantine_markdown
from tasks.data import (
    SAMPLE_NAMES,
    files_version,
    read_jsonl,
    sample_corpora,
    sample_eval_sets,
    write_jsonl,
)
from tasks.knowledge import EmbeddingSpec, evaluate_collection, reindex, sample_questions

STEP = {"cache_policy": NO_CACHE, "persist_result": False}
ALL_MODES = {"bm25": 0.0, "vector": 1.0}


def embedding_spec(settings: Settings) -> EmbeddingSpec:
    return EmbeddingSpec(
        model=embedding_model_path(settings),
        identity=embedding_model_id(settings),
        batch_size=settings.config().embedding.batch_size,
    )


def ingest_to_jsonl(settings: Settings, folder: Path) -> Path:
    """Extract a folder of documents into a corpus JSONL in the state folder."""
    from tasks.ingestion import ingest_folder

    result = ingest_folder(folder, settings.config().data.access_groups)
    out = settings.state / "ingested" / f"{folder.resolve().name}.jsonl"
    records = result.documents + [  # unparseable files travel on as empty documents
        {"id": None, "text": "", "_file": p.file, "_problem": f"{p.rule}: {p.excerpt}"}
        for p in result.problems
    ]
    write_jsonl(out, records)
    return out


@task(name="resolve-corpora", **STEP)
def resolve_corpora(settings: Settings, corpus: list[str] | None) -> dict[str, str]:
    """The corpora to index: given JSONL files or folders, else params `knowledge.corpora`
    (bundled sample names, or JSONL files and folders relative to the project folder)."""
    resolved: dict[str, str] = {}
    if not corpus:
        configured = settings.config().knowledge.corpora
        names = [c for c in configured if c in SAMPLE_NAMES]
        samples = sample_corpora(
            settings.data_dir, settings.params() | {"knowledge": {"corpora": names}}
        )
        resolved |= {k: str(v) for k, v in samples.items()}
        corpus = [str(settings.home / c) for c in configured if c not in SAMPLE_NAMES]
    from tasks.validation import InputRejected

    given: dict[str, Path] = {}
    for item in corpus:
        path = Path(item)
        if not path.exists():
            raise InputRejected(f"{path}: rule 'corpus exists' failed: no such file or folder")
        name = path.stem if path.is_file() else path.resolve().name
        other = given.get(name) or (Path(resolved[name]) if name in resolved else None)
        if other is not None:
            raise InputRejected(
                f"{path}: rule 'unique corpus name' failed: '{name}' is also the name of "
                f"{other}; rename one (corpora are tracked, ingested and reported by name)"
            )
        given[name] = path
    for name, path in given.items():
        resolved[name] = str(ingest_to_jsonl(settings, path) if path.is_dir() else path)
    return resolved


@task(name="validate-corpus", **STEP)
def validate_corpus(
    settings: Settings, corpora: dict[str, str]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Great Expectations per document: valid ones continue, the rest are quarantined."""
    from tasks.data import DataFormatError
    from tasks.validation import InputRejected

    docs: list[dict[str, Any]] = []
    for path in corpora.values():
        try:
            docs.extend(read_jsonl(Path(path), annotate=True))
        except DataFormatError as exc:
            raise InputRejected(str(exc)) from exc
    valid, held = quarantine(docs, settings.config().validation.model_dump())
    for doc, problem in ((d, d.get("_problem")) for d in docs):
        if problem:  # ingestion failures carry their own rule
            for q in held:
                if q.file == doc["_file"]:
                    q.rule, q.excerpt = "parseable", problem
    create_markdown_artifact(
        key="corpus-quarantine",
        markdown=quarantine_markdown(held, len(valid)),
        description="Documents kept out of the index",
    )
    if held:
        get_run_logger().warning(
            "%d documents quarantined: %s", len(held), [(q.file, q.rule) for q in held[:10]]
        )
    return valid, [q.as_dict() for q in held]


def load_eval_sets(settings: Settings, limit: int | None) -> dict[str, list[dict[str, Any]]]:
    seed = settings.config().data.split_seed
    return {
        name: sample_questions(read_jsonl(path), limit or 0, seed)
        for name, path in sample_eval_sets(settings.data_dir, settings.params()).items()
    }


@task(name="reindex-knowledge", **STEP)
def reindex_knowledge(
    settings: Settings,
    docs: list[dict[str, Any]],
    corpora: dict[str, str],
    full: bool,
    quarantined: list[dict[str, Any]],
    evaluate: bool = True,
    allow_mass_delete: bool = False,
) -> dict[str, Any]:
    """Incremental update or blue-green rebuild, recorded in the knowledge experiment
    (a refused run raises IndexSafetyError before Weaviate is written; its MLflow run
    ends FAILED)."""
    import mlflow

    limit = settings.config().index.gate_max_questions
    version = files_version({k: Path(v) for k, v in corpora.items()})
    eval_sets = load_eval_sets(settings, limit) if evaluate else {}
    tracking.use_experiment(tracking.KNOWLEDGE_EXPERIMENT)
    with mlflow.start_run(run_name=f"reindex-{'full' if full else 'auto'}-{version}") as run:
        with weaviate_client(settings) as client:
            result = reindex(
                client,
                docs,
                version,
                embedding_spec(settings),
                settings.params(),
                full=full,
                eval_sets=eval_sets,
                allow_mass_delete=allow_mass_delete,
            )
        manifest = result.manifest
        mlflow.log_params(
            {
                "mode": result.mode,
                "full": full,
                "collection": result.collection,
                "alias": result.alias,
                "index_version": manifest.get("index_version"),
                "embedding_model": manifest.get("embedding_model"),
                **{f"chunking.{k}": v for k, v in manifest.get("chunking", {}).items()},
            }
        )
        mlflow.log_metrics(
            {
                "documents": result.documents,
                "objects": result.objects,
                "new_documents": len(result.new_documents),
                "changed_documents": len(result.changed_documents),
                "removed_documents": len(result.removed_documents),
                "upserted_objects": result.upserted_objects,
                "deleted_objects": result.deleted_objects,
                "quarantined_documents": len(quarantined),
                "seconds": result.seconds,
                **{k.replace(".", "_"): v for k, v in manifest.get("retrieval", {}).items()},
            }
        )
        mlflow.set_tags(
            {
                "data_version": version,
                "mode": result.mode,
                "gate_passed": str(result.gate.get("passed")),
            }
        )
        mlflow.log_dict(result.as_dict(), "index_manifest.json")
        mlflow.log_dict({"quarantined": quarantined}, "quarantine_report.json")
        for name, path in corpora.items():
            tracking.log_dataset(
                read_jsonl(Path(path)), Path(path), f"corpus-{name}", "indexing", version
            )
    summary = result.as_dict() | {"mlflow_run_id": run.info.run_id, "quarantined": len(quarantined)}
    create_markdown_artifact(
        key="knowledge-index",
        markdown=reindex_markdown(summary),
        description="Re-index result and live index manifest",
    )
    return summary


def reindex_markdown(summary: dict[str, Any]) -> str:
    lines = [
        f"## Knowledge index: {summary['mode']}",
        "",
        f"Live collection `{summary['live_collection']}` behind alias `{summary['alias']}`; "
        f"data version `{summary['data_version']}`; {summary['documents']} documents, "
        f"{summary['objects']} objects, {summary['quarantined']} quarantined.",
        "",
        "| change | documents | objects |",
        "|---|---|---|",
        f"| new | {len(summary['new_documents'])} | upserted {summary['upserted_objects']} |",
        f"| changed | {len(summary['changed_documents'])} | deleted {summary['deleted_objects']} |",
        f"| removed | {len(summary['removed_documents'])} | |",
        "",
        f"Gate: `{json.dumps(summary['gate'])}`",
        f"Pruned versions: {summary['pruned'] or 'none'}",
        "",
        "```json",
        json.dumps(summary["manifest"], indent=2),
        "```",
    ]
    return "\n".join(lines)


def evaluate_live(
    settings: Settings, client, eval_sets: dict[str, list[dict[str, Any]]], modes: dict[str, float]
) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """The live collection, its manifest and its retrieval quality on the eval sets (per set,
    per mode) for the evaluation groups; LookupError when there is no live index."""
    from dualengine.resolve import index_alias, live_index
    from tasks.index_versions import read_manifest

    live = live_index(client, index_alias(settings))
    manifest = read_manifest(client, live)
    groups = settings.config().retrieval.evaluation_groups
    report = evaluate_collection(client, live, eval_sets, embedding_spec(settings), modes, groups)
    return live, manifest, report


@task(name="evaluate-retrieval", **STEP)
def evaluate_retrieval_step(settings: Settings, limit: int | None = None) -> dict[str, Any]:
    """BM25-only, vector-only and hybrid quality of the live index on the sample eval sets."""
    import mlflow

    modes = ALL_MODES | {"hybrid": settings.config().retrieval.alpha}
    eval_sets = load_eval_sets(settings, limit)
    started = time.perf_counter()
    with weaviate_client(settings) as client:
        live, manifest, report = evaluate_live(settings, client, eval_sets, modes)
    rows = [
        {"set": name, "questions": len(eval_sets[name]), "mode": mode}
        | {k: round(v, 4) for k, v in metrics.items()}
        for name, by_mode in report.items()
        for mode, metrics in by_mode.items()
    ]
    tracking.use_experiment(tracking.KNOWLEDGE_EXPERIMENT)
    with mlflow.start_run(run_name=f"retrieval-eval-{live}"):
        mlflow.set_tags({"data_version": manifest.get("data_version"), "collection": live})
        mlflow.log_params({"alpha": modes["hybrid"], "collection": live})
        for row in rows:
            prefix = f"{row['set']}.{row['mode']}"
            mlflow.log_metrics(
                {
                    f"{prefix}.{k}": row[k]
                    for k in ("recall_at_5", "recall_at_10", "mrr_at_10", "ndcg_at_10")
                }
            )
        mlflow.log_table({k: [r[k] for r in rows] for k in rows[0]}, "retrieval_quality.json")
    create_table_artifact(
        key="retrieval-quality", table=rows, description=f"Retrieval quality of {live}"
    )
    return {
        "collection": live,
        "data_version": manifest.get("data_version"),
        "rows": rows,
        "seconds": round(time.perf_counter() - started, 1),
    }
