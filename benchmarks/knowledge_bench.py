"""Knowledge-engine benchmarks P1–P3 and the retrieval quality table, measured in one run.

    .venv/bin/python benchmarks/knowledge_bench.py [--queries 500] [--out FILE]

Starts its own Weaviate node in a temporary folder (unless DUALENGINE_WEAVIATE_URL is set),
indexes the bundled sample corpora (XQuAD + SEC 10-Q) and prints a Markdown table.
P1: indexing throughput (chunk + embed + upsert, chunks/s) ÷ bare embedding throughput of the
    same model on the same chunk texts (target ≥ 0.90).
P2: incremental re-index after 5 % of documents change ÷ full rebuild time (target ≤ 0.10).
P3: hybrid top-10 latency including the query embedding, p95 over ≥ 500 queries (≤ 25 ms).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "knowledge.json"))
    args = parser.parse_args()

    state = Path(tempfile.mkdtemp(prefix="dualengine-bench-"))
    os.environ.setdefault("DUALENGINE_STATE_DIR", str(state))
    from dualengine import services
    from dualengine.settings import get_settings

    settings = get_settings()
    own = not settings.weaviate_url
    if own:
        from dualengine.endpoints import free_port

        os.environ["DUALENGINE_WEAVIATE_PORT"] = str(free_port())
        os.environ["DUALENGINE_WEAVIATE_GRPC_PORT"] = str(free_port())
        settings = get_settings()
        services.up(settings, progress=lambda m: print(m, file=sys.stderr), only=("weaviate",))
    try:
        results = run(settings, args.queries)
    finally:
        if own:
            services.down(settings, progress=lambda m: None)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(markdown(results))


def run(settings, n_queries: int) -> dict:
    from dualengine.models import embedding_model_id, embedding_model_path
    from dualengine.weaviate_client import weaviate_client
    from tasks import index_store, index_versions, indexing
    from tasks.chunking import chunking_identity, tokenizer_json
    from tasks.data import read_jsonl, sample_corpora, sample_eval_sets
    from tasks.embedding import embed_query, embed_texts, load_embedder
    from tasks.knowledge import EmbeddingSpec, evaluate_collection, evaluation_groups, reindex
    from tasks.retrieval import hybrid_search

    params = copy.deepcopy(settings.params())
    params["index"] |= {
        "alias": "BenchPassages",
        "collection_prefix": "BenchPassages",
        "keep_versions": 5,
    }
    model = embedding_model_path(settings)
    spec = EmbeddingSpec(model, embedding_model_id(settings), params["embedding"]["batch_size"])
    docs = [d for p in sample_corpora(settings.data_dir, params).values() for d in read_jsonl(p)]
    groups = evaluation_groups(params, docs)
    chunking = chunking_identity(params["chunking"])
    load_embedder(model)
    tokenizer = tokenizer_json(model)
    started = time.perf_counter()
    chunks = indexing.chunk_corpus(docs, tokenizer, chunking)
    chunk_seconds = time.perf_counter() - started
    texts = [c.embedding_text() for c in chunks]

    started = time.perf_counter()
    embed_texts(model, texts, batch_size=spec.batch_size, show=False)
    bare_seconds = time.perf_counter() - started

    with weaviate_client(settings) as client:
        full = reindex(client, docs, "bench-v1", spec, params, full=True)
        full_seconds = full.seconds

        rng = random.Random(5)
        changed_ids = set(rng.sample([d["id"] for d in docs], max(1, len(docs) // 20)))
        edited = copy.deepcopy(docs)
        for doc in edited:
            if doc["id"] in changed_ids:
                doc["text"] += " This sentence was added by the P2 benchmark."
        plan = indexing.plan_incremental(
            index_store.live_documents(client.collections.get(full.collection)), edited
        )
        incremental = reindex(client, edited, "bench-v2", spec, params)

        eval_sets = {
            n: read_jsonl(p) for n, p in sample_eval_sets(settings.data_dir, params).items()
        }
        questions = [q["question"] for items in eval_sets.values() for q in items]
        latencies = []
        for i in range(n_queries):
            q = questions[i % len(questions)]
            t0 = time.perf_counter()
            hybrid_search(
                client,
                "BenchPassages",
                q,
                embed_query(model, q),
                10,
                params["retrieval"]["alpha"],
                groups,
            )
            latencies.append((time.perf_counter() - t0) * 1000)
        modes = {"bm25": 0.0, "vector": 1.0, "hybrid": float(params["retrieval"]["alpha"])}
        quality = evaluate_collection(client, "BenchPassages", eval_sets, spec, modes, groups)
        for version in index_versions.list_versions(client, "BenchPassages"):
            if client.alias.exists(alias_name="BenchPassages"):
                client.alias.delete(alias_name="BenchPassages")
            client.collections.delete(version["collection"])

    latencies.sort()
    return {
        "machine": f"{os.cpu_count()} cores, torch threads {settings.threads()}",
        "documents": len(docs),
        "chunks": len(chunks),
        "chunking_seconds": round(chunk_seconds, 2),
        "p1": {
            "bare_embedding_chunks_per_s": round(len(chunks) / bare_seconds, 1),
            "indexing_chunks_per_s": round(len(chunks) / full_seconds, 1),
            "ratio": round(bare_seconds / full_seconds, 3),
            "target": ">= 0.90",
        },
        "p2": {
            "changed_documents": len(changed_ids),
            "planned_changed": len(plan.changed),
            "planned_stale_objects": len(plan.stale_object_ids),
            "upserted_objects": incremental.upserted_objects,
            "deleted_objects": incremental.deleted_objects,
            "incremental_seconds": incremental.seconds,
            "full_seconds": full_seconds,
            "ratio": round(incremental.seconds / full_seconds, 3),
            "target": "<= 0.10",
        },
        "p3": {
            "queries": n_queries,
            "p50_ms": round(statistics.median(latencies), 2),
            "p95_ms": round(latencies[int(0.95 * len(latencies)) - 1], 2),
            "p99_ms": round(latencies[int(0.99 * len(latencies)) - 1], 2),
            "target": "p95 <= 25 ms",
        },
        "quality": quality,
        "eval_questions": {n: len(v) for n, v in eval_sets.items()},
    }


def markdown(r: dict) -> str:
    p1, p2, p3 = r["p1"], r["p2"], r["p3"]
    lines = [
        f"Machine: {r['machine']}; {r['documents']} documents, {r['chunks']} chunks "
        f"(chunking {r['chunking_seconds']} s).",
        "",
        "| id | measure | value | target |",
        "|---|---|---|---|",
        f"| P1 | indexing ÷ bare embedding throughput ({p1['indexing_chunks_per_s']} ÷ "
        f"{p1['bare_embedding_chunks_per_s']} chunks/s) | **{p1['ratio']}** | ≥ 0.90 |",
        f"| P2 | incremental ({p2['changed_documents']} docs changed: {p2['upserted_objects']} "
        f"upserted, {p2['deleted_objects']} deleted) ÷ full rebuild ({p2['incremental_seconds']}"
        f" s ÷ {p2['full_seconds']} s) | **{p2['ratio']}** | ≤ 0.10 |",
        f"| P3 | hybrid top-10 incl. query embedding, {p3['queries']} queries: p50 "
        f"{p3['p50_ms']} ms, p99 {p3['p99_ms']} ms | **p95 {p3['p95_ms']} ms** | ≤ 25 ms |",
        "",
        "| set | questions | mode | recall@5 | recall@10 | MRR@10 | nDCG@10 |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, by_mode in r["quality"].items():
        for mode, m in by_mode.items():
            lines.append(
                f"| {name} | {r['eval_questions'][name]} | {mode} | "
                f"{m['recall_at_5']:.3f} | {m['recall_at_10']:.3f} | "
                f"{m['mrr_at_10']:.3f} | {m['ndcg_at_10']:.3f} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
