"""P8: what MLflow tracing costs an answer — the same engine, traced and untraced, interleaved.

    .venv/bin/python benchmarks/tracing_bench.py [--profile default] [--questions 20] [--rounds 2]

Needs the running services and a live index (`dualengine services up`, `dualengine reindex` or
`dualengine run`). Loads the champion generator (the base model while there is none) once,
then answers held-out XQuAD questions (groups ["public"], query log off) alternating traced
and untraced per question, so both see the same load. Reports the median and p95 wall time of
`engine.ask` each way, the overhead ratio (traced ÷ untraced − 1, target ≤ 5 %), the trace
alone (the same spans and payloads without the answer, timed 50 times) ÷ the untraced median,
the load average before and after, and checks that every traced answer's trace reached
MLflow. Writes results/tracing.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def tracing_only_ms(engine, question: str, repeats: int) -> dict[str, float]:
    """The trace of one answer without the answer: the same spans and payloads (real
    retrieved passages, prompt messages, usage, citations), timed alone — a precise cost
    where the machine's noise hides it in whole answers."""
    from tasks import tracing_steps

    engine.tracer.enabled = True
    _, passages = engine.retrieve(question, ["public"])
    context = passages[: engine.config.context_passages]
    style = engine.config.style_for(context)
    usage = {"input_tokens": 900, "output_tokens": 12}
    answer = engine.ask(question, ["public"])
    spent = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        with engine.tracer.answer({"question": question, "groups": ["public"]}, {}) as scope:
            with scope.span("retrieval", "RETRIEVER", {"query": question}) as span:
                tracing_steps.record_retrieval(span, passages)
            with scope.span("prompt", "PARSER") as span:
                tracing_steps.record_prompt(span, style, question, context)
            with scope.span("generation", "LLM") as span:
                tracing_steps.record_generation(span, engine, style, answer.answer, usage)
            with scope.span("grounding", "PARSER") as span:
                tracing_steps.record_grounding(span, answer.citations, answer.faithfulness, None)
            tracing_steps.record_answer(scope.root, answer)
        spent.append((time.perf_counter() - t0) * 1000)
    return {
        "median": round(statistics.median(spent), 2),
        "p95": round(percentile(spent, 0.95), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default=None, help="tiny | default | gpu")
    parser.add_argument("--questions", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2, help="passes over the questions")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "tracing.json"))
    args = parser.parse_args()
    if args.profile:
        os.environ["DUALENGINE_PROFILE"] = args.profile

    from dualengine.api import engine_for, load_generator_version
    from dualengine.endpoints import export_endpoints
    from dualengine.settings import get_settings
    from tasks.data import read_jsonl, sample_dataset_paths

    settings = get_settings()
    export_endpoints(settings)
    params = settings.params()
    questions = [
        r["question"] for r in read_jsonl(sample_dataset_paths(settings.data_dir, params).eval)
    ][: args.questions]
    generator, version = load_generator_version(settings, "champion")
    engine = engine_for(settings, generator, version, caller="bench", log_queries=False)
    engine.tracer.enabled = True
    if engine.tracer.destination() is None:
        sys.exit("MLflow is not reachable: the traced half would measure nothing")
    times: dict[str, list[float]] = {"traced": [], "untraced": []}
    trace_ids: list[str] = []
    engine.ask(questions[0], ["public"])  # warm-up: first-call costs are not tracing's
    load_before = os.getloadavg()
    started = time.time()
    try:
        for round_ in range(args.rounds):
            for n, question in enumerate(questions):
                order = ("traced", "untraced") if (n + round_) % 2 == 0 else ("untraced", "traced")
                for mode in order:
                    engine.tracer.enabled = mode == "traced"
                    t0 = time.perf_counter()
                    answer = engine.ask(question, ["public"])
                    times[mode].append((time.perf_counter() - t0) * 1000)
                    if mode == "traced":
                        trace_ids.append(answer.trace_id)
                    elif answer.trace_id is not None:
                        sys.exit("an untraced answer carried a trace id")
        span_ms = tracing_only_ms(engine, questions[0], 50)
    finally:
        engine.close()  # flushes the traces still being exported
    load_after = os.getloadavg()
    from mlflow import MlflowClient

    client = MlflowClient()
    stored = sum(1 for t in trace_ids if t and client.get_trace(t, display=False))
    medians = {k: statistics.median(v) for k, v in times.items()}
    result = {
        "date": datetime.now(UTC).isoformat(timespec="minutes"),
        "profile": settings.profile,
        "model_version": version,
        "answers_per_mode": len(times["traced"]),
        "median_ms": {k: round(v, 1) for k, v in medians.items()},
        "p95_ms": {k: round(percentile(v, 0.95), 1) for k, v in times.items()},
        "overhead_ratio": round(medians["traced"] / medians["untraced"] - 1, 4),
        "overhead_ms": round(medians["traced"] - medians["untraced"], 1),
        "tracing_only_ms": span_ms,
        "tracing_only_ratio": round(span_ms["median"] / medians["untraced"], 4),
        "traces_stored": f"{stored}/{len(trace_ids)}",
        "wall_s": round(time.time() - started, 1),
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in load_after],
        "cpus": os.cpu_count(),
        "async_trace_logging": os.environ.get(
            "MLFLOW_ENABLE_ASYNC_TRACE_LOGGING", "true (default)"
        ),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
