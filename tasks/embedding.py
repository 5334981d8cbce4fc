"""Sentence embeddings for passages and queries (one model instance per process)."""

from __future__ import annotations

import threading
from functools import lru_cache
from typing import TYPE_CHECKING

from tasks.progress import progress

if TYPE_CHECKING:
    import numpy as np


def load_embedder(model: str):
    """A sentence-transformers model on the CPU (or the GPU when one is there), loaded once
    per process even when concurrent questions ask for it at the same moment."""
    from tasks.base_model import LOAD_LOCK

    with LOAD_LOCK:
        return _cached_embedder(model)


@lru_cache(maxsize=2)
def _cached_embedder(model: str):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(model)


@lru_cache(maxsize=1)
def bf16_autocast() -> bool:
    """Whether embeddings run under bf16 autocast: on a CPU with native bf16 (the model and
    the returned vectors stay float32). On the reference machine: 1.8x the fp32 speed,
    cosine to the fp32 vector ≥ 0.99996 (benchmarks/README.md, "Embedding in bf16")."""
    import torch

    from tasks.hardware import cpu_has_bf16

    return not torch.cuda.is_available() and cpu_has_bf16()


def _encode(embedder, texts: list[str], batch_size: int) -> np.ndarray:
    import numpy as np
    import torch

    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16_autocast()):
        vectors = embedder.encode(texts, batch_size=batch_size, normalize_embeddings=True)
    return np.asarray(vectors, dtype=np.float32)


def embed_texts(
    model: str, texts: list[str], batch_size: int = 32, show: bool = True
) -> np.ndarray:
    """Unit-normalised float32 vectors, one per text, with a progress bar for long inputs."""
    import numpy as np

    embedder = load_embedder(model)
    if not show or len(texts) <= batch_size:
        return _encode(embedder, texts, batch_size)
    parts = []
    with progress("embedding passages", len(texts), key="embedding") as bar:
        for start in range(0, len(texts), batch_size):
            chunk = texts[start : start + batch_size]
            parts.append(_encode(embedder, chunk, batch_size))
            bar.advance(len(chunk))
    return np.concatenate(parts)


_ONE_THREAD = threading.Lock()


def embed_query(model: str, text: str) -> list[float]:
    """One query on one thread: for a dozen tokens, thread hand-offs cost more than they save,
    and a second busy process beside it makes two threads many times slower (p95 124 ms
    against 15 ms measured on 2 loaded cores). Queries take turns (~15 ms each): torch's
    thread count is process-wide, and concurrent save-set-restore sequences of a served
    model's request threads left the whole process on one thread (P5, 2026-11-28)."""
    import torch

    with _ONE_THREAD:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return embed_texts(model, [text], show=False)[0].tolist()
        finally:
            torch.set_num_threads(threads)
