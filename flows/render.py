"""How the command line shows results: rich tables and summary lines on stderr, answers and
one-line results on stdout (the part scripts read). Pure printing, no services touched."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.table import Table

from dualengine import services

console = Console(stderr=True)


def as_json(result: Any) -> None:
    """The whole result as JSON on stdout (`--json`)."""
    print(json.dumps(result, indent=2, default=str))


def show(result: Any, json_out: bool, table: Callable[[Any], None]) -> None:
    """The result as JSON (`--json`) or through `table`."""
    if json_out:
        as_json(result)
    else:
        table(result)


def services_table(rows: list[services.ServiceStatus]) -> None:
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


def prepared_data(xquad: dict[str, Any], version: str, corpus: Any, evaluation: Any) -> None:
    for name, path in xquad.items():
        console.print(f"xquad {name}: {path}")
    console.print(f"xquad data version: {version}")
    console.print(f"sec10q corpus: {corpus}\nsec10q eval: {evaluation}")


def gate(decision: dict[str, Any], table_rows: list[dict[str, Any]] | None = None) -> None:
    """The held-out score table and the gate's verdict."""
    table_rows = decision["table"] if table_rows is None else table_rows
    table = Table(*table_rows[0].keys(), title="Held-out scores, mean [95% bootstrap CI]")
    for row in table_rows:
        table.add_row(*[str(v) for v in row.values()])
    Console(width=240, stderr=True).print(table)
    verdict = "PROMOTED to champion" if decision["promoted"] else "champion unchanged"
    console.print(
        f"Gate: challenger v{decision['challenger_version']} {verdict}: {decision['reason']}"
    )


def lifecycle_run(summary: dict[str, Any], prefect_ui: str, mlflow_ui: str) -> None:
    """`run`: the gate, the sample answer and where to look in the Prefect and MLflow UIs."""
    gate(summary["decision"], summary["gate_table"])
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
        f"Done in {summary['seconds']} s.\nPrefect UI: {prefect_ui}/runs  (flow 'dual-engine', "
        f"tab Artifacts)\nMLflow UI:  {mlflow_ui}/#/models/"
        f"{summary['decision']['model_name']}  (experiments dualengine-behaviour, "
        "dualengine-knowledge)"
    )


def training(result: dict[str, Any]) -> None:
    t = result["training"]
    console.print(
        f"challenger v{result['challenger_version']}: {t['steps']} steps "
        f"(resumed from {t['resumed_from']}), loss {t['first_loss']} → "
        f"{t['final_loss']}, {t['tokens_per_second']} tokens/s"
    )


def raft_data(result: dict[str, Any]) -> None:
    console.print(f"RAFT data {result['version']}: {result['train']}, {result['eval']}")


def ingest_problems(problems: list[Any], out: str, readable: int) -> None:
    for problem in problems:
        console.print(f"[red]  {problem.file}: rule '{problem.rule}': {problem.excerpt}[/red]")
    console.print(
        f"[red]{len(problems)} problems; nothing written to {out} "
        f"({readable} documents were readable)[/red]"
    )


def ingested(count: int, out: str, skipped: int) -> None:
    console.print(f"{count} documents → {out}; {skipped} unsupported files skipped")


def reindex(result: dict[str, Any]) -> None:
    from flows.steps.reindex import reindex_markdown

    Console().print(reindex_markdown(result))


def retrieval_quality(result: dict[str, Any]) -> None:
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


def rollback(json_line: bool, result: dict[str, Any]) -> None:
    print(
        json.dumps(result)
        if json_line
        else f"{result.get('alias') or result.get('model_name')}: {result['from']} → {result['to']}"
    )


def answer(result: dict[str, Any]) -> None:
    """`ask`: the answer, its cited quotes, a conflict with the closed-book answer, provenance."""
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


def rating(result: dict[str, Any]) -> None:
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


def attribution(result: dict[str, Any]) -> None:
    """`evaluate`: per set, the {model} × {context} table, the gaps and the diagnosis."""
    from tasks.attribution import GAP_METRICS, METRICS
    from tasks.gate import interval, row_interval

    out = Console(width=220)
    for section in result["sets"]:
        table = Table("model", "context", *METRICS, title=f"{section['set']}: mean [95% CI]")
        for r in section["rows"]:
            table.add_row(
                r["model"],
                r["context"],
                *(row_interval(r, m) for m in METRICS),
            )
        out.print(table)
        gap_table = Table("gap", *GAP_METRICS)
        for name, per_metric in section["gaps"].items():
            gap_table.add_row(name, *(interval(per_metric[m], signed=True) for m in GAP_METRICS))
        out.print(gap_table)
        out.print(f"diagnosis: {section['diagnosis']}")
        out.print(f'"finetuned" answers come from: {section.get("answered_by", "?")}')
        out.print(f"conflict rate (closed-book vs grounded): {section['conflict_rate']:.3f}")
    out.print(f"report: {result['html']} (MLflow run {result['run_id']})")


def hybrid_registered(result: dict[str, Any]) -> None:
    verb = "registered" if result["new"] else "already served"
    console.print(
        f"dualengine-hybrid v{result['hybrid_version']} {verb} "
        f"(generator {result['generator_version']})"
    )


def monitor(result: dict[str, Any]) -> None:
    table = Table("engine", "signal", "value", "warn / degraded", "status", title="Monitor")
    for s in result["signals"]:
        value = "-" if s["value"] is None else f"{s['value']:.4g}"
        table.add_row(s["engine"], s["name"], value, f"{s['warn']} / {s['degraded']}", s["status"])
    Console(width=160).print(table)
    console.print(f"status: {result['status']}; events: {result['events'] or 'none'}")


def deployed(count: int, pool: str, pool_type: str) -> None:
    console.print(
        f"{count} deployments on {pool_type} work pool '{pool}'; start workers with "
        f"`prefect worker start --pool {pool}`"
    )


def system_status(report: dict[str, Any]) -> None:
    """`status`: the services table, the model aliases, the live index and the query log."""
    services_table([services.ServiceStatus(**s) for s in report["services"]])
    for key in ("champion", "challenger", "served_hybrid"):
        console.print(f"{key}: {report['models'].get(key)}")
    console.print(f"live index: {report['index']}")
    console.print(f"query log: {report['query_log']}")
