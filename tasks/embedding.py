"""Sentence embeddings for passages and queries (one model instance per process)."""

from __future__ import annotations

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


def embed_texts(
    model: str, texts: list[str], batch_size: int = 32, show: bool = True
) -> np.ndarray:
    """Unit-normalised float32 vectors, one per text, with a progress bar for long inputs."""
    import numpy as np

    embedder = load_embedder(model)
    if not show or len(texts) <= batch_size:
        return embedder.encode(texts, batch_size=batch_size, normalize_embeddings=True)
    parts = []
    with progress("embedding passages", len(texts), key="embedding") as bar:
        for start in range(0, len(texts), batch_size):
            chunk = texts[start : start + batch_size]
            parts.append(embedder.encode(chunk, batch_size=batch_size, normalize_embeddings=True))
            bar.advance(len(chunk))
    return np.concatenate(parts).astype("float32")


def embed_query(model: str, text: str) -> list[float]:
    """One query on one thread: for a dozen tokens, thread hand-offs cost more than they save,
    and a second busy process beside it makes two threads many times slower (p95 124 ms
    against 15 ms measured on 2 loaded cores)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return embed_texts(model, [text], show=False)[0].tolist()
    finally:
        torch.set_num_threads(threads)
