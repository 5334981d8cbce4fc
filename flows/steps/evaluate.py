"""Prefect tasks of the attribution evaluation: held-out items, scoring, records and report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from dualengine.settings import Settings
from flows.steps.heldout import heldout_items
from tasks.data import sample_set
from tasks.progress import progress

STEP = {"cache_policy": NO_CACHE, "persist_result": False}


def set_paths(settings: Settings, name: str) -> tuple[Path, Path]:
    """Corpus and held-out questions of a bundled evaluation set."""
    return sample_set(settings.data_dir, settings.params(), name)


@task(name="attribution-items", **STEP)
def attribution_items(settings: Settings, name: str, questions: int) -> list[dict[str, Any]]:
    """Sampled held-out questions of a set with retrieved chunks (the groups of
    `retrieval.evaluation_groups`), the gold chunk among distractors, and recall@k: the gate's
    builder (flows.steps.heldout.heldout_items)."""
    corpus_path, eval_path = set_paths(settings, name)
    groups = settings.config().retrieval.evaluation_groups
    return heldout_items(
        settings, corpus_path, eval_path, questions, groups, untrained(settings, name)
    )


def untrained(settings: Settings, name: str):
    """For a set whose corpus trains its own answer style: keep only questions on the filings
    never trained on (the same seeded company split as the training data); else None."""
    from tasks.data import split_by_company

    config = settings.config()
    style = config.style(name)
    if style is None:
        return None
    companies, seed = style.train_companies, config.training.seed
    return lambda rows: split_by_company(rows, companies, seed)[1]


def answer_style(settings: Settings, name: str) -> tuple[str, int]:
    """System prompt and max_new_tokens for answering an evaluation set: the corpus's own
    style (`training.styles`) when it has one, else the profile's."""
    config = settings.config()
    profile = settings.training_profile()
    style = config.training.styles.get(name)
    per_set = config.evaluation.max_new_tokens.get(name)
    if style is not None:
        return style.system, style.max_new_tokens
    return profile.system_prompt, per_set or profile.max_new_tokens


def answered_by_base(settings: Settings, name: str, adapter_on_every_set: bool = False) -> bool:
    """Whether the system answers this set's corpus with the base model: its style says
    `use_adapter: false` (and the caller did not ask to score the adapter there anyway)."""
    style = settings.config().style(name)
    return style is not None and not style.use_adapter and not adapter_on_every_set


def base_score_key(
    settings: Settings,
    name: str,
    items: list[dict[str, Any]],
    max_new_tokens: int,
    index: str,
    system: str | None = None,
) -> dict[str, Any]:
    """What the base model's attribution scores depend on: weights, held-out set, index version,
    the items with their contexts, prompts and token budgets."""
    from dualengine.models import base_model_path
    from tasks.data import files_version
    from tasks.score_cache import digest, model_digest

    config = settings.config()
    profile = settings.training_profile()
    return {
        "kind": "attribution-base",
        "base_model": model_digest(base_model_path(settings)),
        "set": name,
        "held_out": files_version({"eval": set_paths(settings, name)[1]}),
        "index": index,
        "inputs": digest(items),
        "params": digest(
            {
                "system_prompt": system or profile.system_prompt,
                "metrics": "f1 em semantic nll faithfulness recall",
                "closed_book_prompt": config.answer.closed_book_prompt,
                "max_new_tokens": max_new_tokens,
                "context_length": profile.context_tokens,
                "quantize": settings.quantize(),
            }
        ),
    }


@task(name="score-conditions", **STEP)
def score_model_conditions(
    settings: Settings,
    generator,
    label: str,
    items: list[dict[str, Any]],
    max_new_tokens: int,
    system: str | None = None,
) -> tuple[dict[str, dict[str, list[float]]], dict[str, list[str]]]:
    """One model's answers and scores in the three context conditions, with progress."""
    from dualengine.models import embedding_model_path
    from tasks.attribution import score_conditions
    from tasks.evaluation import semantic_scores

    config = settings.config()
    model = embedding_model_path(settings)
    with progress(f"evaluate: {label}", 3 * len(items), key=f"evaluate-{label}") as bar:
        return score_conditions(
            generator,
            system or settings.training_profile().system_prompt,
            " ".join(config.answer.closed_book_prompt.split()),
            items,
            max_new_tokens,
            on_batch=bar.advance,
            semantic=lambda answers, golds: semantic_scores(model, answers, golds),
        )


@task(name="record-attribution", **STEP)
def record_attribution(
    settings: Settings, sections: list[dict[str, Any]], meta: dict[str, Any]
) -> dict[str, Any]:
    """MLflow run (metrics, table, gaps, HTML report), Prefect table + markdown artifacts."""
    import mlflow
    from tasks import tracking
    from tasks.attribution import GAP_METRICS, METRICS, markdown_gaps, markdown_table
    from tasks.gate import row_interval
    from tasks.report import html_report

    report = html_report("dualengine component attribution", sections, meta)
    out_dir = settings.state / "reports"
    out_dir.mkdir(parents=True, exist_ok=True)
    html_path = out_dir / f"attribution-{meta['finetuned_version']}.html"
    html_path.write_text(report, encoding="utf-8")
    tracking.use_experiment("dualengine-evaluation")
    with mlflow.start_run(run_name=f"attribution-g{meta['finetuned_version']}") as run:
        mlflow.set_tags({k: str(v) for k, v in meta.items()})
        mlflow.log_params({k: str(v)[:250] for k, v in meta.items()})
        for section in sections:
            name = section["set"]
            for r in section["rows"]:
                mlflow.log_metrics(
                    {f"{name}.{r['model']}.{r['context']}.{m}": r[m] for m in METRICS if m in r}
                )
            for gap, per_metric in section["gaps"].items():
                mlflow.log_metrics(
                    {
                        f"{name}.{gap}.{m}": per_metric[m]["mean"]
                        for m in GAP_METRICS
                        if m in per_metric
                    }
                )
            mlflow.log_metric(f"{name}.conflict_rate", section["conflict_rate"])
            mlflow.set_tag(f"{name}.answered_by", section["answered_by"])
            rows = section["rows"]
            mlflow.log_table({k: [r[k] for r in rows] for k in rows[0]}, f"attribution_{name}.json")
            mlflow.log_dict(section["gaps"], f"gaps_{name}.json")
            tracking.log_dataset(
                [{k: i[k] for k in ("id", "question", "answer")} for i in section["items"]],
                section["eval_path"],
                f"{name}-held-out",
                "evaluation",
                meta["data_version"],
            )
        mlflow.log_text(report, "attribution_report.html")
    for section in sections:
        create_table_artifact(
            key=f"attribution-{section['set'].replace('_', '-')}",
            table=[
                {"model": r["model"], "context": r["context"]}
                | {m: row_interval(r, m) for m in METRICS if m in r}
                for r in section["rows"]
            ],
            description=f"Attribution on {section['set']}: mean [95% bootstrap CI]",
        )
    create_markdown_artifact(
        key="attribution-report",
        markdown="# Component attribution\n\n"
        + "\n\n".join(
            f'## {s["set"]}\n\n"finetuned" = what the system answers with: '
            f"{s['answered_by']}\n\n{markdown_table(s['rows'])}\n\n{markdown_gaps(s['gaps'])}\n\n"
            f"**Diagnosis:** {s['diagnosis']}\n\nConflict rate (closed-book vs grounded, "
            f"fine-tuned): {s['conflict_rate']:.3f}"
            for s in sections
        )
        + f"\n\nMLflow run `{run.info.run_id}`; HTML report `{html_path}`.\n\n```json\n"
        + json.dumps(meta, indent=2)
        + "\n```",
        description="Which engine contributes what",
    )
    get_run_logger().info("attribution report: %s (MLflow run %s)", html_path, run.info.run_id)
    return {"run_id": run.info.run_id, "html": str(html_path)}
