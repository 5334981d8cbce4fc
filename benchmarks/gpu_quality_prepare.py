"""gpu_quality `prepare` (CPU, no services): chunks, retrieval and the gguf wheel → carry folder.

The project's own chunking (tasks.indexing) and MiniLM embeddings (tasks.embedding), with
brute-force cosine top-k in numpy instead of Weaviate's hybrid search; only ids and texts go to
the carry folder that travels to the GPU machine.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
from pathlib import Path
from typing import Any

from gpu_quality_common import ROOT, log


def prepare(args: argparse.Namespace) -> None:
    """Chunks, retrieval of every train/eval question, the gguf wheel: into args.carry."""
    import numpy as np

    from dualengine.settings import get_settings
    from tasks.chunking import tokenizer_json
    from tasks.data import read_jsonl, sample_dataset_paths
    from tasks.embedding import embed_texts
    from tasks.indexing import chunk_corpus

    settings = get_settings()
    params = settings.params()
    from dualengine.models import embedding_model_path

    model = embedding_model_path(settings)
    paths = sample_dataset_paths(settings.data_dir, params)
    docs = read_jsonl(paths.corpus)
    train, evaluation = read_jsonl(paths.train), read_jsonl(paths.eval)
    if args.limit_eval:
        evaluation = evaluation[: args.limit_eval]
    if args.limit_train:
        train = random.Random(0).sample(train, min(args.limit_train, len(train)))
    if args.limit_eval or args.limit_train:  # a small corpus: the gold documents + a few others
        wanted = {str(r["passage_id"]) for r in train} | {
            str(r["relevant_ids"][0]) for r in evaluation
        }
        docs = [d for d in docs if str(d["id"]) in wanted] + [
            d for d in docs if str(d["id"]) not in wanted
        ][:12]
    log(f"chunking {len(docs)} documents")
    chunks = chunk_corpus(docs, tokenizer_json(model), params["chunking"])
    log(f"embedding {len(chunks)} chunks and {len(train) + len(evaluation)} questions")
    vectors = embed_texts(model, [c.embedding_text() for c in chunks], show=False)
    questions = [r["question"] for r in train] + [r["question"] for r in evaluation]
    queries = embed_texts(model, questions, show=False)
    depth = int(args.depth)
    order = np.argsort(-(np.asarray(queries) @ np.asarray(vectors).T), axis=1)[:, :depth]
    table = {
        c.passage_id: {"passage_id": c.passage_id, "title": c.title, "text": c.text} for c in chunks
    }
    by_doc: dict[str, list[dict[str, Any]]] = {}
    for c in chunks:
        by_doc.setdefault(c.doc_id, []).append(table[c.passage_id])
    from tasks.heldout import gold_passage

    def with_hits(row: dict[str, Any], ranked, gold_doc: str) -> dict[str, Any]:
        gold = gold_passage(by_doc[gold_doc], row["answer"])
        return row | {
            "hit_ids": [chunks[int(i)].passage_id for i in ranked],
            "gold_passage_id": gold["passage_id"],
        }

    train_rows = [with_hits(r, order[i], str(r["passage_id"])) for i, r in enumerate(train)]
    eval_rows = [
        with_hits(r, order[len(train) + i], str(r["relevant_ids"][0]))
        for i, r in enumerate(evaluation)
    ]
    documents = {str(d["id"]): {"title": d["title"], "text": d["text"]} for d in docs}
    carry = Path(args.carry)
    carry.mkdir(parents=True, exist_ok=True)
    bundle = {
        "chunks": table,
        "documents": {k: documents[k] for k in {str(r["relevant_ids"][0]) for r in evaluation}},
        "train": train_rows,
        "eval": eval_rows,
        "meta": {
            "embedding_model": model,
            "chunking": params["chunking"],
            "retrieval": "MiniLM cosine top-k (numpy brute force), no BM25",
            "depth": depth,
            "data": {"corpus": str(paths.corpus), "train": len(train), "eval": len(evaluation)},
        },
    }
    with gzip.open(carry / "bundle.json.gz", "wt", encoding="utf-8") as handle:
        json.dump(bundle, handle, ensure_ascii=False)
    hits3 = sum(
        str(r["relevant_ids"][0]) in {h.split("#")[0] for h in r["hit_ids"][:3]} for r in eval_rows
    )
    log(
        f"wrote {carry / 'bundle.json.gz'} ({(carry / 'bundle.json.gz').stat().st_size} bytes); "
        f"gold document in top-3 chunks for {hits3}/{len(eval_rows)} held-out questions"
    )
    if args.wheel:
        download_wheel(carry / "wheels")


def download_wheel(folder: Path) -> None:
    """The gguf wheel (pure Python) the GPU image lacks, at the version of requirements.lock."""
    import re
    import subprocess

    lock = (ROOT / "requirements.lock").read_text()
    version = re.search(r"^gguf==([\w.]+)", lock, re.MULTILINE).group(1)
    folder.mkdir(parents=True, exist_ok=True)
    if list(folder.glob(f"gguf-{version}-*.whl")):
        return
    command = [  # the project venv has no pip; any pip downloads a py3-none-any wheel
        "python3",
        "-m",
        "pip",
        "download",
        f"gguf=={version}",
        "--no-deps",
        "--only-binary=:all:",
        "-d",
        str(folder),
    ]
    subprocess.run(command, check=True)
    log(f"gguf {version} wheel in {folder}")
