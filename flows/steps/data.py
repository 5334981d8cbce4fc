"""Prefect tasks: thin wrappers over tasks/ that add tracking and a readable artifact each."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from dualengine.settings import Settings
from tasks.data import DatasetPaths, data_version, file_digest, read_jsonl, sample_dataset_paths
from tasks.validation import DatasetValidationError, validate_file

STEP = {"cache_policy": NO_CACHE, "persist_result": False}


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
    rules = settings.config().validation.model_dump()
    known: list[str] = []
    for path in corpora.values():
        known.extend(str(r.get("id")) for r in read_jsonl(Path(path)))
    reports = [
        validate_file("train", paths.train, rules, known),
        validate_file("eval", paths.eval, rules, known),
    ]
    gate_on_reports(reports, "validation-report", "Great Expectations", "Dataset validation")
    get_run_logger().info("training and evaluation sets passed validation")


def gate_on_reports(reports, key: str, title: str, description: str) -> None:
    """One markdown artifact for a set of validation reports; raise if any failed."""
    ok = all(r.success for r in reports)
    create_markdown_artifact(
        key=key,
        markdown=f"## {title}: {'passed' if ok else 'FAILED'}\n\n"
        + "\n\n".join(r.markdown() for r in reports),
        description=description,
    )
    if not ok:
        raise DatasetValidationError(reports)


def answer(
    settings: Settings,
    question: str,
    groups: list[str] | None,
    caller: str = "cli",
    conflict_check: bool | None = None,
) -> dict[str, Any]:
    """Answer from the champion adapter and the live index (plain function, used by the CLI)."""
    from dualengine.api import open_engine

    with open_engine(settings, caller=caller) as engine:
        return engine.ask(question, groups, conflict_check).as_dict()


@task(name="answer-sample-question", **STEP)
def answer_sample(settings: Settings, question: str, groups: list[str] | None) -> dict[str, Any]:
    result = answer(settings, question, groups, caller="flow")
    rows = "\n".join(
        f"| `{c['passage_id']}` | {c['title']} | {c['score']} | {c['supports_answer']} "
        f"| {c['quote'][:160]} |"
        for c in result["citations"]
    )
    create_markdown_artifact(
        key="sample-answer",
        markdown=f"## {question}\n\n**Answer:** {result['answer']}\n\n"
        f"Model version {result['model_version']}, index `{result['index_collection']}`, "
        f"timings {json.dumps(result['timings_ms'])}\n\n"
        "| passage | title | score | supports answer | quote |\n|---|---|---|---|---|\n" + rows,
        description="Hybrid answer with citations",
    )
    return result
