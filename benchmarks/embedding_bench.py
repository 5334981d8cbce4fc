"""Passage embedding in fp32 against bf16 autocast (what `tasks.embedding` does on a CPU with
native bf16), on real chunks of the bundled corpora, in one run with the load recorded.

    .venv/bin/python benchmarks/embedding_bench.py [--chunks 512] [--threads 2] [--repeats 2]

Reports chunks/s of each, their ratio, the cosine between the two vectors of every chunk and
whether the top-5 neighbours of held-out questions stay the same (results/embedding_bf16.json).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def chunks_of(settings, model: str, limit: int) -> list[str]:
    """Embedding texts of real chunks: three quarters from the SEC filings, the rest XQuAD
    (the bundled corpora's mix is 94 % SEC text)."""
    from tasks.chunking import tokenizer_json
    from tasks.data import read_jsonl, sample_set
    from tasks.indexing import chunk_document

    params = settings.params()
    tokenizer = tokenizer_json(model)
    texts: list[str] = []
    for name, share in (("sec10q", 0.75), ("xquad", 1.0)):
        corpus, _ = sample_set(settings.data_dir, params, name)
        for doc in read_jsonl(corpus):
            texts += [
                c.embedding_text() for c in chunk_document(doc, tokenizer, params["chunking"])
            ]
            if len(texts) >= limit * share:
                break
        texts = texts[: int(limit * share)]
    return texts[:limit]


def encode(model, texts: list[str], bf16: bool) -> tuple[np.ndarray, float]:
    import torch

    mixed = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    started = time.perf_counter()
    with mixed:
        vectors = model.encode(texts, batch_size=32, normalize_embeddings=True)
    return np.asarray(vectors, dtype=np.float32), time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=512)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "embedding_bf16.json")
    args = parser.parse_args()

    import torch
    from sentence_transformers import SentenceTransformer

    from dualengine.models import embedding_model_path
    from dualengine.settings import Settings
    from tasks.hardware import cpu_has_bf16

    torch.set_num_threads(args.threads)
    settings = Settings()
    path = embedding_model_path(settings)
    texts = chunks_of(settings, path, args.chunks)
    model = SentenceTransformer(path)
    encode(model, texts[:32], False)  # warm-up
    load = [os.getloadavg()[0]]
    runs = []
    for _ in range(args.repeats):
        fp32, t32 = encode(model, texts, False)
        bf16, t16 = encode(model, texts, True)
        runs.append(
            {"fp32_s": round(t32, 2), "bf16_s": round(t16, 2), "ratio": round(t32 / t16, 2)}
        )
    load.append(os.getloadavg()[0])
    cosine = (fp32 * bf16).sum(axis=1)
    top32 = np.argsort(-fp32 @ fp32[:64].T, axis=0)[:5].T
    top16 = np.argsort(-bf16 @ bf16[:64].T, axis=0)[:5].T
    same_top5 = float(np.mean([set(a) == set(b) for a, b in zip(top32, top16, strict=True)]))
    result = {
        "chunks": len(texts),
        "threads": args.threads,
        "cpu_has_bf16": cpu_has_bf16(),
        "load_1min_start_end": load,
        "runs": runs,
        "fp32_chunks_per_s": round(len(texts) / min(r["fp32_s"] for r in runs), 1),
        "bf16_chunks_per_s": round(len(texts) / min(r["bf16_s"] for r in runs), 1),
        "cosine_min": round(float(cosine.min()), 6),
        "cosine_mean": round(float(cosine.mean()), 6),
        "same_top5_of_64_chunks_as_queries": same_top5,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
