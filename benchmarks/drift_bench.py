"""P6: detection power and false-alarm rate of the monitor's query signals, and the monitor's
cost on 10,000 logged queries.

    .venv/bin/python benchmarks/drift_bench.py [--trials 200] [--window 50]

Needs the services up with the sample index (`dualengine run` or `reindex` once). Pools:
*unshifted* = held-out XQuAD questions (articles never trained on, same domain as the training
questions), *shifted* = the SEC 10-Q questions (another domain), and a 50/50 *mixed* stream. Each
trial draws a window of logged queries from a pool and computes the signal exactly as the
monitor does (same code, same params.yaml thresholds): power = share of shifted trials called
degraded, false-alarm rate = share of unshifted trials called degraded. Each question's best
retrieval similarity comes from the live index once (groups public + finance). Staleness is
exact by construction (a document diff) and not sampled. Writes results/drift.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def pools(settings):
    """Questions, embeddings and best similarities of the three pools, plus the reference."""
    from dualengine.models import embedding_model_path
    from dualengine.weaviate_client import weaviate_client
    from tasks.data import read_jsonl, sample_dataset_paths, sec10q_paths
    from tasks.embedding import embed_texts
    from tasks.retrieval import hybrid_search

    params = settings.params()
    paths = sample_dataset_paths(settings.data_dir, params)
    model = embedding_model_path(settings)
    questions = {
        "train": [r["question"] for r in read_jsonl(paths.train)],
        "unshifted": [r["question"] for r in read_jsonl(paths.eval)],
        "shifted": [r["question"] for r in read_jsonl(sec10q_paths(settings.data_dir)[1])],
    }
    vectors = {k: np.asarray(embed_texts(model, v, show=False)) for k, v in questions.items()}
    best = {}
    with weaviate_client(settings) as client:
        alias = params["index"]["alias"]
        for name in ("unshifted", "shifted"):
            best[name] = np.asarray(
                [
                    max(
                        (
                            p.similarity
                            for p in hybrid_search(
                                client,
                                alias,
                                q,
                                v.tolist(),
                                5,
                                params["retrieval"]["alpha"],
                                ["public", "finance"],
                            )
                        ),
                        default=0.0,
                    )
                    for q, v in zip(questions[name], vectors[name], strict=True)
                ]
            )
        centroid = corpus_centroid(client, alias)
    return questions, vectors, best, centroid


def corpus_centroid(client, alias: str) -> np.ndarray:
    total, n = None, 0
    for obj in client.collections.get(alias).iterator(include_vector=True):
        vector = obj.vector.get("default") if isinstance(obj.vector, dict) else obj.vector
        v = np.asarray(vector, dtype=np.float64)
        total, n = (v if total is None else total + v), n + 1
    return total / n


def draw(rng, vectors, best, pool: str, size: int):
    if pool == "mixed":
        half = size // 2
        a = rng.choice(len(vectors["unshifted"]), half)
        b = rng.choice(len(vectors["shifted"]), size - half)
        return (
            np.concatenate([vectors["unshifted"][a], vectors["shifted"][b]]),
            np.concatenate([best["unshifted"][a], best["shifted"][b]]),
        )
    idx = rng.choice(len(vectors[pool]), size)
    return vectors[pool][idx], best[pool][idx]


def trials(settings, vectors, best, centroid, n_trials: int, window: int) -> dict:
    from tasks import monitoring

    params = settings.params()
    rules = params["monitor"]
    floor = float(params["answer"]["min_similarity"])
    golden = vectors["unshifted"]
    rng = np.random.default_rng(7)
    out: dict = {}
    for pool in ("unshifted", "shifted", "mixed"):
        counts = {"query_drift": 0, "low_score_share": 0, "corpus_distance_increase": 0}
        for t in range(n_trials):
            emb, sims = draw(rng, vectors, best, pool, window)
            signals = [
                monitoring.embedding_drift(
                    vectors["train"], emb, window, rules["behaviour"]["query_drift"], seed=t
                ),
                monitoring.low_score_share(
                    list(sims), floor, window, rules["knowledge"]["low_score_share"]
                ),
                monitoring.corpus_distance(
                    emb, golden, centroid, window, rules["knowledge"]["corpus_distance_increase"]
                ),
            ]
            for s in signals:
                counts[s.name] += s.status == "degraded"
        out[pool] = {k: v / n_trials for k, v in counts.items()}
    return out


def monitor_cost(settings, vectors, best, n_queries: int = 10_000) -> dict:
    """Seconds to read 10k logged queries and compute every query-based signal."""
    from flows.monitor_steps import read_queries
    from tasks import monitoring
    from tasks.query_log import QueryLog, QueryRecord

    params = settings.params()
    rules = params["monitor"]
    folder = Path(tempfile.mkdtemp(prefix="drift-bench-"))
    url = f"sqlite:///{folder / 'q.db'}"
    log = QueryLog(url)
    rng = np.random.default_rng(1)
    import sqlalchemy as sa

    from tasks.query_log import QUERIES

    rows = []
    for i in range(n_queries):
        pool = "shifted" if i % 2 else "unshifted"
        j = rng.integers(len(vectors[pool]))
        rows.append(
            QueryRecord(
                question=f"q{i}",
                embedding=vectors[pool][j].tolist(),
                retrieved_ids=[f"d{i}#0"],
                retrieved_scores=[1.0],
                answer="a",
                answered=True,
                latency_ms=10.0,
                groups=["public"],
                top_similarity=float(best[pool][j]),
                conflict=bool(i % 10 == 0),
            ).__dict__
        )
    with log._engine.begin() as conn:  # bulk insert: setting up the benchmark, not measuring it
        conn.execute(
            QUERIES.insert(),
            [
                r
                | {
                    "embedding": np.asarray(r["embedding"], dtype="float32").tobytes(),
                    "retrieved_ids": json.dumps(r["retrieved_ids"]),
                    "retrieved_scores": json.dumps(r["retrieved_scores"]),
                    "groups": json.dumps(r["groups"]),
                }
                for r in rows
            ],
        )
        assert (
            conn.execute(sa.select(sa.func.count()).select_from(QUERIES)).scalar_one() == n_queries
        )
    log.close()
    local = settings.model_copy(update={"query_log_url": url})
    started = time.perf_counter()
    queries = read_queries(local)
    read_s = time.perf_counter() - started
    emb = np.asarray([q["embedding"] for q in queries], dtype=np.float64)
    monitoring.embedding_drift(vectors["train"], emb, 30, rules["behaviour"]["query_drift"])
    monitoring.low_score_share(
        [q["top_similarity"] for q in queries], 0.2, 30, rules["knowledge"]["low_score_share"]
    )
    monitoring.conflict_rate(
        [q["conflict"] for q in queries], 30, rules["behaviour"]["conflict_rate"]
    )
    total_s = time.perf_counter() - started
    return {
        "queries": len(queries),
        "read_s": round(read_s, 3),
        "signals_total_s": round(total_s, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--window", type=int, default=50)
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/drift.json"))
    args = parser.parse_args()

    from dualengine import services
    from dualengine.settings import get_settings

    settings = get_settings()
    services.export_endpoints(settings)
    _, vectors, best, centroid = pools(settings)
    result = {
        "trials": args.trials,
        "window": args.window,
        "rates_degraded": trials(settings, vectors, best, centroid, args.trials, args.window),
        "targets": {"power": ">= 0.95", "false_alarm": "<= 0.05", "monitor_10k_s": "<= 5"},
        "monitor_cost": monitor_cost(settings, vectors, best),
        "pool_sizes": {k: len(v) for k, v in vectors.items()},
    }
    print(json.dumps(result, indent=2))
    Path(args.out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
