"""Lifecycle jobs of the behaviour engine and the whole system: setup, data, the dual-engine
run, fine-tuning, RAFT data, the promotion gate, attribution and the served hybrid model."""

from __future__ import annotations

import contextlib
import sys
import time
from typing import Annotated

import typer

from dualengine.settings import Settings, get_settings
from flows import render
from flows.commands.options import JsonOption, ProfileOption, TrainOption, WaitOption
from flows.commands.runner import connect, connected, lock_wait, report_flow, run_flow
from flows.render import console

OracleCorpusOption = Annotated[
    str | None, typer.Option(help="Corpus JSONL with the oracle passages.")
]
VersionOption = Annotated[str | None, typer.Option(help="Version to gate (default: challenger).")]


def setup(
    profile: ProfileOption = None,
    skip_weaviate: Annotated[bool, typer.Option(help="Don't build or fetch Weaviate.")] = False,
) -> None:
    """Fetch or build what a run needs: Weaviate binary, base model cache, embedding model."""
    from dualengine.setup import run_setup

    ok = run_setup(Settings.for_profile(profile), skip_weaviate=skip_weaviate, say=console.print)
    if not ok:
        raise typer.Exit(1)


def prepare_data() -> None:
    """Prepare the bundled samples (the DVC `prepare` stage): XQuAD corpus / train / eval JSONL
    and the SEC 10-Q PDFs extracted into a corpus plus its evaluation set."""
    from tasks.data import data_version, sample_dataset_paths, sec10q_paths

    settings = get_settings()
    paths = sample_dataset_paths(settings.data_dir, settings.params())
    render.prepared_data(paths.as_dict(), data_version(paths), *sec10q_paths(settings.data_dir))


def run(
    profile: ProfileOption = None,
    corpus: Annotated[
        str | None, typer.Option(help="Corpus JSONL (id, title, text, source, updated_at, groups).")
    ] = None,
    train: TrainOption = None,
    eval_set: Annotated[str | None, typer.Option("--eval", help="Evaluation JSONL.")] = None,
    question: Annotated[
        str | None, typer.Option(help="Sample question to answer at the end.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Run the dual-engine flow: validate → index → fine-tune → evaluate → register → answer."""
    settings = Settings.for_profile(profile)
    endpoints = connect(settings)
    from flows.dual_engine import DEFAULT_QUESTION, dual_engine_flow
    from tasks.validation import DatasetValidationError

    started = time.perf_counter()
    try:  # libraries print to stdout; keep it for the result
        with contextlib.redirect_stdout(sys.stderr):
            summary = dual_engine_flow(
                profile=settings.profile,
                corpus=corpus,
                train=train,
                eval=eval_set,
                question=question or DEFAULT_QUESTION,
            )
    except DatasetValidationError as exc:
        console.print(
            f"[red]Validation failed; nothing was indexed, trained or registered.[/red]\n{exc}"
        )
        raise typer.Exit(3) from exc
    summary["seconds"] = round(time.perf_counter() - started, 1)
    if as_json:
        render.as_json(summary)
        return
    prefect_ui = endpoints.prefect_api_url.removesuffix("/api")
    render.lifecycle_run(summary, prefect_ui, endpoints.mlflow_tracking_uri)


def finetune(
    profile: ProfileOption = None,
    resume: Annotated[bool, typer.Option(help="Continue from the latest checkpoint.")] = False,
    accelerate_config: Annotated[
        str | None, typer.Option(help="accelerate config (infra/accelerate/*.yaml) to launch with.")
    ] = None,
    num_processes: Annotated[int, typer.Option(help="Processes for accelerate launch.")] = 1,
    max_steps: Annotated[int | None, typer.Option(help="Override the profile's max_steps.")] = None,
    corpus: OracleCorpusOption = None,
    train: TrainOption = None,
    eval_set: Annotated[str | None, typer.Option("--eval", help="Held-out QA JSONL.")] = None,
    instructions: Annotated[
        str | None,
        typer.Option(help="JSONL of {instruction, output} rows for tone and format rules."),
    ] = None,
    wait: WaitOption = None,
    as_json: JsonOption = False,
) -> None:
    """RAFT data from the live index → GX/PII gate → LoRA via Accelerate → `challenger`.
    One training at a time (Prefect limit `dualengine-training`, shared with `retrain`)."""
    from flows.locks import TRAINING_LIMIT

    settings = connected(profile)
    from flows.finetune import finetune_flow

    report_flow(
        settings,
        finetune_flow,
        render.training,
        as_json,
        lock=(TRAINING_LIMIT, lock_wait(settings, wait), "training"),
        resume=resume,
        accelerate_config=accelerate_config,
        num_processes=num_processes,
        max_steps=max_steps,
        corpus=corpus,
        train=train,
        eval=eval_set,
        instructions=instructions,
    )


def build_raft(profile: ProfileOption = None) -> None:
    """Build and validate the RAFT training data against the live index (DVC stage `raft`)."""
    settings = connected(profile)
    from flows.finetune import build_raft_flow

    render.raft_data(run_flow(settings, build_raft_flow))


def promote(
    profile: ProfileOption = None,
    version: VersionOption = None,
    as_json: JsonOption = False,
) -> None:
    """Gate challenger vs champion vs base (F1/EM, NLL, guardrails, bootstrap CIs)."""
    settings = connected(profile)
    from flows.finetune import promote_flow

    report_flow(settings, promote_flow, render.gate, as_json, version=version)


def evaluate(
    profile: ProfileOption = None,
    sets: Annotated[
        list[str] | None,
        typer.Option("--set", help="Evaluation set (repeatable): xquad, sec10q."),
    ] = None,
    questions: Annotated[
        int | None, typer.Option(help="Held-out questions per set (default: params.yaml).")
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(help="Fine-tuned version or alias (default: champion, else challenger)."),
    ] = None,
    adapter_on_every_set: Annotated[
        bool,
        typer.Option(
            help="Score the adapter also on sets whose style answers without it "
            "(training.styles.<set>.use_adapter: false)."
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Attribution table: {base, fine-tuned} × {closed-book, retrieved, oracle} with CIs."""
    settings = connected(profile)
    from flows.evaluate import evaluate_flow

    report_flow(
        settings,
        evaluate_flow,
        render.attribution,
        as_json,
        sets=sets,
        questions=questions,
        model=model,
        adapter_on_every_set=adapter_on_every_set,
    )


def register_hybrid(
    profile: ProfileOption = None,
    generator: Annotated[
        str, typer.Option(help="Generator alias or version to pin (default: champion).")
    ] = "champion",
    force: Annotated[bool, typer.Option(help="Register even if nothing changed.")] = False,
) -> None:
    """Package the hybrid system (generator version + index alias) as an MLflow pyfunc."""
    settings = connected(profile)
    from flows.serving import register_hybrid_flow

    result = run_flow(settings, register_hybrid_flow, generator=generator, force=force)
    render.hybrid_registered(result)
