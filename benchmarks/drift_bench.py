"""P6: detection power and false-alarm rate of the monitor's query signals, and the monitor's
cost on 10,000 logged queries.

    .venv/bin/python benchmarks/drift_bench.py [--trials 200] [--window 50]

Needs the services up with the sample index of both corpora (`dualengine run`). Each trial
draws a window of logged queries and computes the signal exactly as the monitor does (same
code, params.yaml thresholds); the table reports how often each status comes out.
- query drift (behaviour): the reference is a random 60 % of the training questions; the
  unshifted stream draws from the other 40 % (same distribution), the shifted streams from
  the SEC questions (another domain) and a 50/50 mix; questions of held-out XQuAD articles
  (new topics of the same domain) are reported too.
- low-score share and nearest-passage distance (knowledge): unshifted = held-out XQuAD
  questions whose documents the caller sees; shifted = SEC questions from a caller who may
  only see `public` documents (their documents are not in that caller's index), and a mix.
Staleness is a document diff (exact by construction) and is not sampled. Writes
results/drift.json.
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
    """Embeddings of the question pools and best-passage similarities from the live index."""
    from dualengine.models import embedding_model_path
    from dualengine.resolve import index_alias
    from dualengine.weaviate_client import weaviate_client
    from tasks.data import read_jsonl, sample_dataset_paths, sec10q_paths
    from tasks.embedding import embed_texts
    from tasks.retrieval import best_similarities

    params = settings.params()
    paths = sample_dataset_paths(settings.data_dir, params)
    model = embedding_model_path(settings)
    questions = {
        "train": [r["question"] for r in read_jsonl(paths.train)],
        "held_out": [r["question"] for r in read_jsonl(paths.eval)],
        "sec": [r["question"] for r in read_jsonl(sec10q_paths(settings.data_dir)[1])],
    }
    vectors = {k: np.asarray(embed_texts(model, v, show=False)) for k, v in questions.items()}

    def best(client, name: str, groups: list[str]) -> np.ndarray:
        alpha = params["retrieval"]["alpha"]
        alias = index_alias(settings)
        return np.asarray(
            best_similarities(client, alias, questions[name], vectors[name], alpha, groups)
        )

    with weaviate_client(settings) as client:
        sims = {
            # in-corpus questions from callers who may see their documents
            "held_out": best(client, "held_out", params["retrieval"]["default_groups"]),
            # questions whose documents the caller's index does not hold (finance questions,
            # public-only caller): what the knowledge signals must catch
            "sec_uncovered": best(client, "sec", ["public"]),
        }
    return vectors, sims


def rates(outcomes: list[str]) -> dict[str, float]:
    n = len(outcomes)
    return {s: outcomes.count(s) / n for s in ("ok", "warn", "degraded", "insufficient-data")}


def trials(settings, vectors, sims, n_trials: int, window: int) -> dict:
    """Status rates per signal and stream. The drift reference is a random 60 % of the training
    questions; "same distribution" draws from the other 40 %."""
    from tasks import monitoring

    params = settings.params()
    rules = params["monitor"]
    floor = float(params["answer"]["min_similarity"])
    rng = np.random.default_rng(7)
    order = rng.permutation(len(vectors["train"]))
    cut = int(0.6 * len(order))
    reference, same = vectors["train"][order[:cut]], vectors["train"][order[cut:]]

    def sample(pool: np.ndarray, other: np.ndarray | None = None) -> np.ndarray:
        if other is None:
            return pool[rng.choice(len(pool), window)]
        half = window // 2
        return np.concatenate(
            [pool[rng.choice(len(pool), half)], other[rng.choice(len(other), window - half)]]
        )

    drift_streams = {
        "same distribution (unshifted)": (same, None),
        "held-out articles (new topics, same domain)": (vectors["held_out"], None),
        "SEC questions (shifted)": (vectors["sec"], None),
        "50/50 same + SEC (shifted)": (same, vectors["sec"]),
    }
    knowledge_streams = {
        "covered questions (unshifted)": (sims["held_out"], None),
        "uncovered questions (shifted)": (sims["sec_uncovered"], None),
        "50/50 covered + uncovered (shifted)": (sims["held_out"], sims["sec_uncovered"]),
    }
    out: dict = {"query_drift": {}, "low_score_share": {}, "corpus_distance_increase": {}}
    for label, (pool, other) in drift_streams.items():
        out["query_drift"][label] = rates(
            [
                monitoring.embedding_drift(
                    reference, sample(pool, other), window, rules["behaviour"]["query_drift"], t
                ).status
                for t in range(n_trials)
            ]
        )
    golden = list(sims["held_out"])
    for label, (pool, other) in knowledge_streams.items():
        low, dist = [], []
        for _ in range(n_trials):
            window_sims = list(sample(pool, other))
            k = rules["knowledge"]
            low.append(
                monitoring.low_score_share(window_sims, floor, window, k["low_score_share"]).status
            )
            dist.append(
                monitoring.corpus_distance(
                    window_sims, golden, window, k["corpus_distance_increase"]
                ).status
            )
        out["low_score_share"][label] = rates(low)
        out["corpus_distance_increase"][label] = rates(dist)
    return out


def monitor_cost(settings, vectors, sims, n_queries: int = 10_000) -> dict:
    """Seconds to read 10k logged queries and compute every query-based signal."""
    from flows.steps.monitor import read_queries
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
        pool = "sec" if i % 2 else "held_out"
        j = rng.integers(len(vectors[pool]))
        similarity = sims["sec_uncovered" if i % 2 else "held_out"][j]
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
                top_similarity=float(similarity),
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

    from dualengine import endpoints
    from dualengine.settings import get_settings

    settings = get_settings()
    endpoints.export_endpoints(settings)
    vectors, sims = pools(settings)
    result = {
        "trials": args.trials,
        "window": args.window,
        "status_rates": trials(settings, vectors, sims, args.trials, args.window),
        "targets": {"power": ">= 0.95", "false_alarm": "<= 0.05", "monitor_10k_s": "<= 5"},
        "monitor_cost": monitor_cost(settings, vectors, sims),
        "pool_sizes": {k: len(v) for k, v in vectors.items()},
    }
    print(json.dumps(result, indent=2))
    Path(args.out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
