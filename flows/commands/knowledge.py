"""Knowledge-engine jobs: ingest documents, re-index, evaluate retrieval, and roll back the
index or the champion model."""

from __future__ import annotations

from functools import partial
from typing import Annotated

import typer

from dualengine.settings import get_settings
from flows import render
from flows.commands.options import JsonOption, WaitOption
from flows.commands.runner import connected, fail, lock_wait, report_flow


def ingest(
    path: Annotated[
        str, typer.Argument(help="A folder (PDF, Markdown, text, HTML, JSONL) or file.")
    ],
    out: Annotated[str, typer.Option(help="Corpus JSONL to write.")] = "corpus.jsonl",
    group: Annotated[
        list[str] | None,
        typer.Option("--group", "-g", help="Access groups for documents without any (repeatable)."),
    ] = None,
) -> None:
    """Extract documents into corpus JSONL (id, title, text, source, updated_at, groups)."""
    from pathlib import Path

    from dualengine.resolve import AccessGroupsError, validate_groups
    from tasks.data import write_jsonl
    from tasks.ingestion import ingest_folder

    settings = get_settings()
    try:
        groups = validate_groups(group or settings.config().data.access_groups, "--group")
    except AccessGroupsError as exc:
        fail(exc, 2)
    if not Path(path).exists():
        fail(f"{path}: no such file or folder", 4)
    result = ingest_folder(Path(path), groups)
    docs = [{k: v for k, v in d.items() if not k.startswith("_")} for d in result.documents]
    if result.problems:
        render.ingest_problems(result.problems, out, len(docs))
        raise typer.Exit(4)
    write_jsonl(Path(out), docs)
    render.ingested(len(docs), out, len(result.skipped))


def reindex(
    full: Annotated[
        bool, typer.Option("--full", help="Blue-green rebuild behind the gate.")
    ] = False,
    corpus: Annotated[
        list[str] | None,
        typer.Option(help="Corpus JSONL or folder (repeatable); default: the bundled samples."),
    ] = None,
    evaluate: Annotated[bool, typer.Option(help="Evaluate retrieval (the rebuild gate).")] = True,
    allow_mass_delete: Annotated[
        bool,
        typer.Option(
            "--allow-mass-delete",
            help="Let an incremental run remove more than index.max_delete_fraction of the "
            "live objects.",
        ),
    ] = False,
    wait: WaitOption = None,
    as_json: JsonOption = False,
) -> None:
    """Re-index: only new, changed and removed documents, or --full for a gated rebuild.
    Refused (exit 5, nothing written) when it would wipe or mass-delete the live index; one
    re-index at a time (exit 6 when another does not finish within --wait)."""
    settings = connected()
    from flows.reindex import reindex_flow

    report_flow(
        settings,
        reindex_flow,
        render.reindex,
        as_json,
        full=full,
        corpus=corpus,
        evaluate=evaluate,
        allow_mass_delete=allow_mass_delete,
        lock_wait=lock_wait(settings, wait),
    )


def evaluate_retrieval(
    limit: Annotated[int | None, typer.Option(help="Questions per set (default: all).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Recall@5/10, MRR@10 and nDCG@10 for BM25-only, vector-only and hybrid search."""
    settings = connected()
    from flows.reindex import evaluate_retrieval_flow

    report_flow(settings, evaluate_retrieval_flow, render.retrieval_quality, as_json, limit=limit)


def rollback(
    index: Annotated[bool, typer.Option("--index", help="Move the index alias back.")] = False,
    model: Annotated[bool, typer.Option("--model", help="Move `champion` back.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Roll back the live index (--index) or the champion model (--model) one version."""
    if index == model:
        render.console.print("Say what to roll back: --index or --model")
        raise typer.Exit(2)
    settings = connected()
    from flows.finetune import rollback_model_flow
    from flows.reindex import rollback_index_flow

    show = partial(render.rollback, as_json)
    if index:
        report_flow(settings, rollback_index_flow, show)
    else:
        report_flow(settings, rollback_model_flow, show)
