"""P5: load on the served hybrid model — concurrent clients against `mlflow models serve`.

    .venv/bin/python benchmarks/serve_load.py [--clients 20] [--seconds 60] [--url URL]

Without --url it starts `mlflow models serve` for `dualengine-hybrid@champion` on a free
loopback port (the services must be up: `dualengine services up`), waits for /ping, runs the
clients, and stops the server. Each client posts one held-out XQuAD question at a time (groups
["public"]) and waits for the answer; a request counts as an error when the status is not 200,
the body has no answer, or it times out. Prints throughput, p50/p95 latency, errors and the
server-side timing split, and the throughput's share of the machine's physical limit
(benchmarks/physical_limit.py: FLOPs per answer ÷ (cores × matmul GFLOP/s in the served
precision, measured in the same run before the clients start); and writes
results/serve_load.json.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def start_server(settings, workers: int) -> tuple[subprocess.Popen, str]:
    import httpx

    from dualengine import endpoints
    from dualengine.hybrid_model import serve_command, serve_env

    endpoints.export_endpoints(settings)
    port = endpoints.free_port()
    log = open(settings.state / "serve-bench.log", "w")  # noqa: SIM115 - lives with the server
    server = subprocess.Popen(
        serve_command(settings, port, workers=workers),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env=serve_env(),
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 600
    while time.time() < deadline:
        if server.poll() is not None:
            sys.exit(f"server exited; see {settings.state / 'serve-bench.log'}")
        try:
            if httpx.get(f"{url}/ping", timeout=2).status_code == 200:
                return server, url
        except httpx.HTTPError:
            time.sleep(1)
    sys.exit("server did not come up in 600 s")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def run_clients(url: str, questions: list[str], clients: int, seconds: float) -> dict:
    import httpx

    latencies: list[float] = []
    server_ms: list[dict] = []
    errors: list[str] = []
    lock = threading.Lock()
    stop_at = time.perf_counter() + seconds

    def client(index: int) -> None:
        with httpx.Client(timeout=300) as http:
            n = index
            while time.perf_counter() < stop_at:
                question = questions[n % len(questions)]
                n += clients
                started = time.perf_counter()
                try:
                    reply = http.post(
                        f"{url}/invocations",
                        json={"dataframe_records": [{"question": question, "groups": ["public"]}]},
                    )
                    ok = reply.status_code == 200 and "answer" in reply.json()["predictions"][0]
                    problem = None if ok else f"{reply.status_code}: {reply.text[:200]}"
                except (httpx.HTTPError, ValueError, KeyError) as exc:
                    problem, reply = f"{type(exc).__name__}: {exc}", None
                elapsed = (time.perf_counter() - started) * 1000
                with lock:
                    if problem:
                        errors.append(problem)
                    else:
                        latencies.append(elapsed)
                        server_ms.append(reply.json()["predictions"][0]["timings_ms"])

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    return {
        "clients": clients,
        "seconds": round(wall, 1),
        "requests_ok": len(latencies),
        "errors": len(errors),
        "error_samples": errors[:5],
        "throughput_rps": round(len(latencies) / wall, 3),
        "p50_ms": round(percentile(latencies, 0.50), 1),
        "p95_ms": round(percentile(latencies, 0.95), 1),
        "server_retrieval_ms_mean": round(statistics.mean(t["retrieval"] for t in server_ms), 1)
        if server_ms
        else None,
        "server_generation_ms_mean": round(statistics.mean(t["generation"] for t in server_ms), 1)
        if server_ms
        else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--url", help="an already running server (default: start one)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/serve_load.json"))
    parser.add_argument(
        "--prompt-tokens", type=int, default=622, help="mean prompt of a served answer"
    )
    args = parser.parse_args()

    from dualengine.settings import get_settings
    from tasks.data import read_jsonl, sample_dataset_paths

    settings = get_settings()
    questions = [
        r["question"]
        for r in read_jsonl(sample_dataset_paths(settings.data_dir, settings.params()).eval)
    ]
    server = None
    url = args.url
    if url is None:
        server, url = start_server(settings, args.workers)
    from transformers import AutoConfig

    from benchmarks.physical_limit import limit
    from dualengine.models import base_model_path

    physical = limit(
        AutoConfig.from_pretrained(base_model_path(settings)),
        args.prompt_tokens,
        settings.training_profile().max_new_tokens,
        precision=settings.quantize(),
    )
    try:
        result = run_clients(url, questions, args.clients, args.seconds)
    finally:
        if server is not None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=60)
    result |= {
        "workers": args.workers,
        "url": url,
        "target_errors": 0,
        "physical_limit": physical,
        "share_of_limit": round(result["throughput_rps"] / physical["answers_per_s"], 3),
        "load_after": [round(x, 2) for x in os.getloadavg()],
    }
    print(json.dumps(result, indent=2))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
