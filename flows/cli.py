"""`dualengine`: the command line. Heavy libraries are imported inside each command."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from dualengine import services
from dualengine.endpoints import export_endpoints, free_port
from dualengine.settings import Settings, get_settings

app = typer.Typer(
    help="Hybrid enterprise AI: a LoRA behaviour engine + a Weaviate knowledge engine.",
    no_args_is_help=True,
    add_completion=False,
)
services_app = typer.Typer(
    help="Start, check and stop the local Prefect, MLflow and Weaviate.", no_args_is_help=True
)
app.add_typer(services_app, name="services")
console = Console(stderr=True)
ANSWER_SERVICES = ("mlflow", "weaviate")  # answering never uses Prefect

ProfileOption = Annotated[
    str | None, typer.Option("--profile", "-p", help="tiny | default | gpu (DUALENGINE_PROFILE)")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
WaitOption = Annotated[
    float | None,
    typer.Option(
        "--wait",
        help="Seconds to wait for a run already in progress before refusing (exit 6); "
        "default params.yaml index.lock_wait_seconds.",
    ),
]


def _lock_wait(settings: Settings, wait: float | None) -> float:
    return float(settings.params()["index"].get("lock_wait_seconds", 60) if wait is None else wait)


def _settings(profile: str | None = None) -> Settings:
    if profile:
        os.environ["DUALENGINE_PROFILE"] = profile
    return get_settings()


def _require_services(settings: Settings, needed: tuple[str, ...] = services.SERVICE_NAMES) -> None:
    """Exit 2 naming the unreachable services among `needed` (answering needs no Prefect)."""
    down = [s for s in services.status(settings) if not s.healthy and s.name in needed]
    if down:
        names = ", ".join(f"{s.name} ({s.url})" for s in down)
        console.print(
            f"[red]Not reachable: {names}.[/red] Run `dualengine services up` "
            "or set PREFECT_API_URL / MLFLOW_TRACKING_URI / DUALENGINE_WEAVIATE_URL."
        )
        raise typer.Exit(2)


@services_app.command("up")
def services_up(
    timeout: Annotated[float, typer.Option(help="Seconds to wait for health checks.")] = 240,
    weaviate_nodes: Annotated[
        int | None,
        typer.Option(
            min=1, max=9, help="Weaviate nodes as one cluster (replication factor min(3, N))."
        ),
    ] = None,
    mlflow_backend: Annotated[
        str | None,
        typer.Option(help="sqlite (default) or postgres: PostgreSQL store + S3 artifacts."),
    ] = None,
) -> None:
    """Start Prefect (SQLite), MLflow (SQLite + local artifacts, or PostgreSQL + S3) and
    Weaviate (one node, or a cluster of N)."""
    settings = get_settings()
    update: dict = {}
    if weaviate_nodes is not None:
        update["weaviate_nodes"] = weaviate_nodes
    if mlflow_backend is not None:
        if mlflow_backend not in ("sqlite", "postgres"):
            console.print(f"[red]--mlflow-backend {mlflow_backend}: use sqlite or postgres[/red]")
            raise typer.Exit(2)
        update["mlflow_backend"] = mlflow_backend
    settings = settings.model_copy(update=update)
    try:
        rows = services.up(settings, timeout=timeout, progress=lambda m: console.print(m))
    except Exception as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    _print_services(rows, as_json=False)


@services_app.command("down")
def services_down() -> None:
    """Stop the services that `services up` started (external endpoints are left alone)."""
    services.down(get_settings(), progress=lambda m: console.print(m))


@services_app.command("status")
def services_status(as_json: JsonOption = False) -> None:
    """Health, URL, PID and log of each service; exit code 1 if any is unhealthy."""
    rows = services.status(get_settings())
    _print_services(rows, as_json)
    if not all(r.healthy for r in rows):
        raise typer.Exit(1)


def _print_services(rows: list[services.ServiceStatus], as_json: bool) -> None:
    if as_json:
        print(json.dumps(services.status_dicts(rows), indent=2))
        return
    table = Table("service", "url", "healthy", "pid", "managed", "log")
    for r in rows:
        table.add_row(
            r.name,
            r.url,
            "yes" if r.healthy else "NO",
            str(r.pid or "-"),
            "yes" if r.managed else "external",
            r.log or "-",
        )
    Console(width=200).print(table)


@app.command()
def setup(
    profile: ProfileOption = None,
    skip_weaviate: Annotated[bool, typer.Option(help="Don't build or fetch Weaviate.")] = False,
) -> None:
    """Fetch or build what a run needs: Weaviate binary, base model cache, embedding model."""
    from dualengine.setup import run_setup

    ok = run_setup(_settings(profile), skip_weaviate=skip_weaviate, say=console.print)
    if not ok:
        raise typer.Exit(1)


@app.command("prepare-data")
def prepare_data() -> None:
    """Prepare the bundled samples (the DVC `prepare` stage): XQuAD corpus / train / eval JSONL
    and the SEC 10-Q PDFs extracted into a corpus plus its evaluation set."""
    from tasks.data import data_version, sample_dataset_paths, sec10q_paths

    settings = get_settings()
    paths = sample_dataset_paths(settings.data_dir, settings.params())
    for name, path in paths.as_dict().items():
        console.print(f"xquad {name}: {path}")
    console.print(f"xquad data version: {data_version(paths)}")
    corpus, evaluation = sec10q_paths(settings.data_dir)
    console.print(f"sec10q corpus: {corpus}\nsec10q eval: {evaluation}")


@app.command()
def run(
    profile: ProfileOption = None,
    corpus: Annotated[
        str | None, typer.Option(help="Corpus JSONL (id, title, text, source, updated_at, groups).")
    ] = None,
    train: Annotated[str | None, typer.Option(help="Training QA JSONL.")] = None,
    eval_set: Annotated[str | None, typer.Option("--eval", help="Evaluation JSONL.")] = None,
    question: Annotated[
        str | None, typer.Option(help="Sample question to answer at the end.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Run the dual-engine flow: validate → index → fine-tune → evaluate → register → answer."""
    settings = _settings(profile)
    _require_services(settings)
    endpoints = export_endpoints(settings)
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
        print(json.dumps(summary, indent=2, default=str))
        return
    ui = endpoints.prefect_api_url.removesuffix("/api")
    _print_gate(summary["gate_table"], summary["decision"])
    answer = summary["answer"]
    if answer:
        by = (
            "the base model (no champion yet)"
            if answer["model_version"] == "base"
            else f"champion v{answer['model_version']}"
        )
        console.print(
            f"\n[bold]Q:[/bold] {answer['question']}\n[bold]Answer[/bold] "
            f"({by}): {answer['answer'] or '(empty)'}"
        )
        for c in answer["citations"]:
            console.print(f"  [{c['passage_id']}] {c['title']} (score {c['score']})")
    console.print(
        f"Done in {summary['seconds']} s.\nPrefect UI: {ui}/runs  (flow 'dual-engine', "
        f"tab Artifacts)\nMLflow UI:  {endpoints.mlflow_tracking_uri}/#/models/"
        f"{summary['decision']['model_name']}  (experiments dualengine-behaviour, "
        "dualengine-knowledge)"
    )


def _print_gate(table_rows: list[dict[str, Any]], decision: dict[str, Any]) -> None:
    table = Table(*table_rows[0].keys(), title="Held-out scores, mean [95% bootstrap CI]")
    for row in table_rows:
        table.add_row(*[str(v) for v in row.values()])
    Console(width=240, stderr=True).print(table)
    verdict = "PROMOTED to champion" if decision["promoted"] else "champion unchanged"
    console.print(
        f"Gate: challenger v{decision['challenger_version']} {verdict}: {decision['reason']}"
    )


@app.command()
def finetune(
    profile: ProfileOption = None,
    resume: Annotated[bool, typer.Option(help="Continue from the latest checkpoint.")] = False,
    accelerate_config: Annotated[
        str | None, typer.Option(help="accelerate config (infra/accelerate/*.yaml) to launch with.")
    ] = None,
    num_processes: Annotated[int, typer.Option(help="Processes for accelerate launch.")] = 1,
    max_steps: Annotated[int | None, typer.Option(help="Override the profile's max_steps.")] = None,
    corpus: Annotated[
        str | None, typer.Option(help="Corpus JSONL with the oracle passages.")
    ] = None,
    train: Annotated[str | None, typer.Option(help="Training QA JSONL.")] = None,
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

    settings = _settings(profile)
    result = _report_flow(
        settings,
        "finetune_flow",
        "flows.finetune",
        as_json,
        lock=(TRAINING_LIMIT, _lock_wait(settings, wait), "training"),
        profile=settings.profile,
        resume=resume,
        accelerate_config=accelerate_config,
        num_processes=num_processes,
        max_steps=max_steps,
        corpus=corpus,
        train=train,
        eval=eval_set,
        instructions=instructions,
    )
    if result is None:
        return
    t = result["training"]
    console.print(
        f"challenger v{result['challenger_version']}: {t['steps']} steps "
        f"(resumed from {t['resumed_from']}), loss {t['first_loss']} → "
        f"{t['final_loss']}, {t['tokens_per_second']} tokens/s"
    )


@app.command("build-raft")
def build_raft(profile: ProfileOption = None) -> None:
    """Build and validate the RAFT training data against the live index (DVC stage `raft`)."""
    settings = _settings(profile)
    result = _run_flow(settings, "build_raft_flow", "flows.finetune", profile=settings.profile)
    console.print(f"RAFT data {result['version']}: {result['train']}, {result['eval']}")


@app.command()
def promote(
    profile: ProfileOption = None,
    version: Annotated[
        str | None, typer.Option(help="Version to gate (default: challenger).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Gate challenger vs champion vs base (F1/EM, NLL, guardrails, bootstrap CIs)."""
    settings = _settings(profile)
    result = _report_flow(
        settings,
        "promote_flow",
        "flows.finetune",
        as_json,
        profile=settings.profile,
        version=version,
    )
    if result is None:
        return
    _print_gate(result["table"], result)


@app.command()
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
        groups = validate_groups(group or settings.params()["data"]["access_groups"], "--group")
    except AccessGroupsError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    if not Path(path).exists():
        console.print(f"[red]{path}: no such file or folder[/red]")
        raise typer.Exit(4)
    result = ingest_folder(Path(path), groups)
    docs = [{k: v for k, v in d.items() if not k.startswith("_")} for d in result.documents]
    for problem in result.problems:
        console.print(f"[red]  {problem.file}: rule '{problem.rule}': {problem.excerpt}[/red]")
    if result.problems:
        console.print(
            f"[red]{len(result.problems)} problems; nothing written to {out} "
            f"({len(docs)} documents were readable)[/red]"
        )
        raise typer.Exit(4)
    write_jsonl(Path(out), docs)
    console.print(f"{len(docs)} documents → {out}; {len(result.skipped)} unsupported files skipped")


def _run_flow(
    settings: Settings,
    flow_name: str,
    module: str = "flows.reindex",
    lock: tuple[str, float, str] | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """Run a flow of flows/reindex.py against the services (prefect is imported only after the
    endpoints are in the environment, or it would start a temporary server of its own), under
    `lock` = (Prefect concurrency limit, seconds to wait, what) if given."""
    _require_services(settings)
    export_endpoints(settings)
    import importlib

    from flows.locks import Busy, exclusive
    from tasks.indexing import IndexSafetyError
    from tasks.validation import DatasetValidationError

    flow = getattr(importlib.import_module(module), flow_name)
    try:
        with (
            contextlib.redirect_stdout(sys.stderr),
            exclusive(*lock) if lock else contextlib.nullcontext(),
        ):
            return flow(**kwargs)
    except DatasetValidationError as exc:
        console.print(f"[red]Validation failed; nothing downstream ran.[/red]\n{exc}")
        raise typer.Exit(3) from exc
    except IndexSafetyError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(5) from exc
    except Busy as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(6) from exc
    except Exception as exc:
        lost = [s for s in services.status(settings) if not s.healthy]
        if not lost:
            raise
        names = ", ".join(f"{s.name} ({s.url})" for s in lost)
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        console.print(
            f"[red]{flow_name} failed: {names} became unreachable during the run[/red] "
            f"({type(exc).__name__}: {first_line}). Restart it (`dualengine services up`) and "
            "rerun; `finetune --resume` continues from the last checkpoint."
        )
        raise typer.Exit(2) from exc


def _report_flow(
    settings: Settings,
    flow_name: str,
    module: str,
    as_json: bool,
    lock: tuple[str, float, str] | None = None,
    **kwargs: Any,
) -> dict[str, Any] | None:
    """Run a flow; a missing model, index or service exits 2 with the message; with --json
    the result is printed and None returned (the caller prints its table otherwise)."""
    try:
        result = _run_flow(settings, flow_name, module, lock, **kwargs)
    except LookupError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    if as_json:
        print(json.dumps(result, indent=2, default=str))
        return None
    return result


@app.command()
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
    settings = get_settings()
    result = _report_flow(
        settings,
        "reindex_flow",
        "flows.reindex",
        as_json,
        full=full,
        corpus=corpus,
        evaluate=evaluate,
        allow_mass_delete=allow_mass_delete,
        lock_wait=_lock_wait(settings, wait),
    )
    if result is None:
        return
    from flows.steps.reindex import reindex_markdown

    Console().print(reindex_markdown(result))


@app.command("evaluate-retrieval")
def evaluate_retrieval(
    limit: Annotated[int | None, typer.Option(help="Questions per set (default: all).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Recall@5/10, MRR@10 and nDCG@10 for BM25-only, vector-only and hybrid search."""
    settings = get_settings()
    result = _report_flow(
        settings, "evaluate_retrieval_flow", "flows.reindex", as_json, limit=limit
    )
    if result is None:
        return
    table = Table(
        "set",
        "questions",
        "mode",
        "recall@5",
        "recall@10",
        "MRR@10",
        "nDCG@10",
        title=f"Retrieval quality of {result['collection']}",
    )
    for r in result["rows"]:
        table.add_row(
            r["set"],
            str(r["questions"]),
            r["mode"],
            f"{r['recall_at_5']:.3f}",
            f"{r['recall_at_10']:.3f}",
            f"{r['mrr_at_10']:.3f}",
            f"{r['ndcg_at_10']:.3f}",
        )
    Console(width=200).print(table)


@app.command()
def rollback(
    index: Annotated[bool, typer.Option("--index", help="Move the index alias back.")] = False,
    model: Annotated[bool, typer.Option("--model", help="Move `champion` back.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Roll back the live index (--index) or the champion model (--model) one version."""
    if index == model:
        console.print("Say what to roll back: --index or --model")
        raise typer.Exit(2)
    settings = get_settings()
    try:
        if index:
            result = _run_flow(settings, "rollback_index_flow")
        else:
            result = _run_flow(settings, "rollback_model_flow", "flows.finetune")
    except LookupError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    print(
        json.dumps(result)
        if as_json
        else f"{result.get('alias') or result.get('model_name')}: {result['from']} → {result['to']}"
    )


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="The question.")],
    groups: Annotated[
        list[str] | None,
        typer.Option(
            "--group",
            "-g",
            help="Caller's access groups (repeatable); default: retrieval.default_groups.",
        ),
    ] = None,
    conflict_check: Annotated[
        bool | None,
        typer.Option(
            "--conflict-check/--no-conflict-check",
            help="Also answer closed-book and flag factual conflicts (default: params.yaml).",
        ),
    ] = None,
    profile: ProfileOption = None,
    as_json: JsonOption = False,
) -> None:
    """Answer from the champion adapter and the live index, with cited passages."""
    from dualengine.resolve import AccessGroupsError, caller_groups

    settings = _settings(profile)
    retrieval = settings.params()["retrieval"]
    try:  # checked before any service or model is touched
        groups = caller_groups(
            groups or retrieval["default_groups"], retrieval.get("anonymous_groups")
        )
    except AccessGroupsError as exc:
        console.print(f"[red]--group: {exc}[/red]")
        raise typer.Exit(2) from exc
    _require_services(settings, ANSWER_SERVICES)
    export_endpoints(settings)
    from flows.steps.data import answer

    try:
        with contextlib.redirect_stdout(sys.stderr):
            result = answer(settings, question, groups, conflict_check=conflict_check)
    except LookupError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    if as_json:
        print(json.dumps(result, indent=2))
        return
    print(result["answer"])
    for c in result["citations"]:
        print(f'  [{c["passage_id"]}] {c["title"]} (score {c["score"]}): "{c["quote"][:120]}"')
    if result["conflict"]:
        conflict = result["conflict"]
        print(
            f"  conflict ({conflict['kind']}): the model alone says "
            f"{result['closed_book_answer']!r}; the documents win"
        )
    print(
        f"  model v{result['model_version']}, index {result['index_collection']}, "
        f"{result['timings_ms']}"
    )
    if result.get("trace_id"):
        print(f"  trace {result['trace_id']} (rate it: dualengine feedback {result['trace_id']})")


@app.command()
def feedback(
    trace_id: Annotated[str, typer.Argument(help="The answer's trace id (ask --json → trace_id).")],
    good: Annotated[bool, typer.Option("--good", help="The answer is right.")] = False,
    bad: Annotated[bool, typer.Option("--bad", help="The answer is wrong.")] = False,
    correction: Annotated[
        str | None,
        typer.Option(help="With --bad: the right answer (becomes a candidate golden question)."),
    ] = None,
    user: Annotated[str | None, typer.Option(help="Who rates (default: the OS user).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Rate an answer: MLflow assessments on its trace, the query log, and the golden set."""
    from dualengine.rating import rate_answer
    from tasks.feedback import FeedbackError

    settings = get_settings()
    try:
        from tasks.feedback import parse_rating

        rules = settings.params()["validation"]
        parse_rating(trace_id, good, bad, correction, user or "-", int(rules["answer_max_chars"]))
        _require_services(settings, ("mlflow",))  # a rating needs only MLflow
        with contextlib.redirect_stdout(sys.stderr):
            result = rate_answer(settings, trace_id, good, bad, correction, user)
    except (FeedbackError, LookupError) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    if as_json:
        print(json.dumps(result, indent=2))
        return
    golden = result["golden"]
    print(
        f"{result['trace_id']}: rated {result['rating']} by {result['user']} "
        f"({len(result['assessment_ids'])} assessments, {result['query_log_rows']} query-log rows)"
    )
    if golden:
        print(
            f"  golden set: {golden['status']} {golden['id']} (size {golden['size']}, "
            f"version {golden['version']}){': ' + golden['reason'] if golden['reason'] else ''}"
        )


@app.command()
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
    as_json: JsonOption = False,
) -> None:
    """Attribution table: {base, fine-tuned} × {closed-book, retrieved, oracle} with CIs."""
    from tasks.attribution import GAP_METRICS, METRICS

    settings = _settings(profile)
    result = _report_flow(
        settings,
        "evaluate_flow",
        "flows.evaluate",
        as_json,
        profile=settings.profile,
        sets=sets,
        questions=questions,
        model=model,
    )
    if result is None:
        return
    out = Console(width=220)
    for section in result["sets"]:
        table = Table("model", "context", *METRICS, title=f"{section['set']}: mean [95% CI]")
        for r in section["rows"]:
            table.add_row(
                r["model"],
                r["context"],
                *(f"{r[m]:.3f} [{r[f'{m}_low']:.3f}, {r[f'{m}_high']:.3f}]" for m in METRICS),
            )
        out.print(table)
        gap_table = Table("gap", *GAP_METRICS)
        for name, per_metric in section["gaps"].items():
            gap_table.add_row(
                name,
                *(
                    f"{per_metric[m]['mean']:+.3f} [{per_metric[m]['low']:+.3f}, "
                    f"{per_metric[m]['high']:+.3f}]"
                    for m in GAP_METRICS
                ),
            )
        out.print(gap_table)
        out.print(f"diagnosis: {section['diagnosis']}")
        out.print(f"conflict rate (closed-book vs grounded): {section['conflict_rate']:.3f}")
    out.print(f"report: {result['html']} (MLflow run {result['run_id']})")


@app.command("register-hybrid")
def register_hybrid_cmd(
    profile: ProfileOption = None,
    generator: Annotated[
        str, typer.Option(help="Generator alias or version to pin (default: champion).")
    ] = "champion",
    force: Annotated[bool, typer.Option(help="Register even if nothing changed.")] = False,
) -> None:
    """Package the hybrid system (generator version + index alias) as an MLflow pyfunc."""
    settings = _settings(profile)
    result = _run_flow(
        settings,
        "register_hybrid_flow",
        "flows.serving",
        profile=settings.profile,
        generator=generator,
        force=force,
    )
    verb = "registered" if result["new"] else "already served"
    console.print(
        f"dualengine-hybrid v{result['hybrid_version']} {verb} "
        f"(generator {result['generator_version']})"
    )


@app.command("serve-model")
def serve_model(
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 5055,
    version: Annotated[str, typer.Option(help="Hybrid model alias or version.")] = "champion",
    workers: Annotated[int, typer.Option(help="Server worker processes.")] = 1,
    host: Annotated[
        str, typer.Option(help="Address to bind (0.0.0.0 only inside a container).")
    ] = "127.0.0.1",
) -> None:
    """Serve the registered hybrid model with `mlflow models serve` (POST /invocations)."""
    from dualengine.hybrid_model import serve_command, serve_env
    from dualengine.model_signing import ModelSignatureError

    settings = get_settings()
    _require_services(settings, ANSWER_SERVICES)
    export_endpoints(settings)
    try:
        command = serve_command(settings, port, version, workers, host=host)
    except ModelSignatureError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    console.print(" ".join(command))
    os.execvpe(command[0], command, serve_env())


@app.command()
def ui(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1 (0 = a free one).")] = 8765,
    model: Annotated[str, typer.Option(help="champion, challenger, a version or base.")] = (
        "champion"
    ),
    profile: ProfileOption = None,
) -> None:
    """The web page: pick groups, ask, see cited quotes, rate; /operator for the operator view."""
    settings = _settings(profile)
    _require_services(settings, ANSWER_SERVICES)
    from dualengine.webapp import serve as serve_ui

    port = port or free_port()
    console.print(f"dualengine ui on http://127.0.0.1:{port} (operator view: /operator)")
    serve_ui(settings, port, model)


@app.command()
def monitor(
    profile: ProfileOption = None,
    emit: Annotated[
        bool, typer.Option(help="Emit the degraded / data-updated events (repairs start).")
    ] = True,
    as_json: JsonOption = False,
) -> None:
    """Drift and health signals of both engines (ok / warn / degraded), events on degradation."""
    settings = _settings(profile)
    result = _report_flow(
        settings, "monitor_flow", "flows.monitor", as_json, profile=settings.profile, emit=emit
    )
    if result is None:
        return
    table = Table("engine", "signal", "value", "warn / degraded", "status", title="Monitor")
    for s in result["signals"]:
        value = "-" if s["value"] is None else f"{s['value']:.4g}"
        table.add_row(s["engine"], s["name"], value, f"{s['warn']} / {s['degraded']}", s["status"])
    Console(width=160).print(table)
    console.print(f"status: {result['status']}; events: {result['events'] or 'none'}")


@app.command()
def serve(
    profile: ProfileOption = None,
    webhook: Annotated[
        bool, typer.Option(help="Receive MLflow alias webhooks (model promoted in the UI).")
    ] = True,
    pool: Annotated[
        str | None,
        typer.Option(help="Deploy to this process work pool for `prefect worker start` instead."),
    ] = None,
    only: Annotated[
        list[str] | None, typer.Option(help="With --pool: only these flows (repeatable).")
    ] = None,
) -> None:
    """Serve every flow as a deployment: cron schedules, event triggers, UI forms (blocks)."""
    settings = _settings(profile)
    _require_services(settings)
    export_endpoints(settings)
    from flows.deployments import serve as serve_deployments

    if pool:
        _deploy(settings, pool, only, "process", None)
        return
    serve_deployments(settings, webhook=webhook)


def _deploy(settings, pool: str, only: list[str] | None, pool_type: str, image: str | None) -> None:
    from flows.deployments import deploy_to_pool

    try:
        ids = deploy_to_pool(settings, pool, only, pool_type=pool_type, image=image)
    except ValueError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    console.print(
        f"{len(ids)} deployments on {pool_type} work pool '{pool}'; start workers with "
        f"`prefect worker start --pool {pool}`"
    )


@app.command()
def deploy(
    pool: Annotated[str, typer.Option(help="Work pool to create (if missing) and deploy to.")],
    pool_type: Annotated[
        str, typer.Option("--type", help="Work pool type: process or kubernetes.")
    ] = "process",
    image: Annotated[
        str | None,
        typer.Option(help="kubernetes: the dualengine image each flow run starts from."),
    ] = None,
    only: Annotated[list[str] | None, typer.Option(help="Only these flows (repeatable).")] = None,
    profile: ProfileOption = None,
) -> None:
    """Every flow as a deployment on a work pool; `prefect worker start --pool NAME` runs them on
    any machine that reaches the services (training one at a time across all workers)."""
    settings = _settings(profile)
    _require_services(settings)
    export_endpoints(settings)
    _deploy(settings, pool, only, pool_type, image)


@app.command()
def status(as_json: JsonOption = False) -> None:
    """Services, champion and challenger versions with metrics, and the live index."""
    settings = get_settings()
    from dualengine.status import system_status

    with contextlib.redirect_stdout(sys.stderr):
        report = system_status(settings)
    if as_json:
        print(json.dumps(report, indent=2, default=str))
        return
    _print_services([services.ServiceStatus(**s) for s in report["services"]], as_json=False)
    for key in ("champion", "challenger", "served_hybrid"):
        console.print(f"{key}: {report['models'].get(key)}")
    console.print(f"live index: {report['index']}")
    console.print(f"query log: {report['query_log']}")


def main(argv: list[str] | None = None) -> Any:
    return app(argv or sys.argv[1:])
