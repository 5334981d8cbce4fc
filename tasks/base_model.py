"""Loading the base causal LM that training and answering start from."""

from __future__ import annotations

import threading
from typing import Any

LOAD_LOCK = threading.RLock()
"""Held by every model load in this process (base LM, adapter, sentence embedder).
transformers swaps `PreTrainedModel.tie_weights` for a no-op while it loads
(`transformers.initialization.no_tie_weights`) and puts back what it found: two loads at once
on two threads (concurrent questions each loading the embedder) can leave the no-op in place
for good, and every later load gets an untied, empty output layer."""


def load_base_model(path: str) -> Any:
    """`AutoModelForCausalLM.from_pretrained(path)`, with tied embeddings tied again and no
    parameter left without data: a checkpoint that stores the embedding once (SmolLM2's
    lm_head is tied to embed_tokens) must never answer with an untied, freshly initialised
    or empty ("meta") output layer. Such a load raises instead of answering with noise."""
    from transformers import AutoModelForCausalLM

    with LOAD_LOCK:
        model = AutoModelForCausalLM.from_pretrained(path)
        if getattr(model.config, "tie_word_embeddings", False):
            model.tie_weights()
    empty = [name for name, p in model.named_parameters() if p.device.type == "meta"]
    if empty:
        raise RuntimeError(f"{path}: loaded without data for {', '.join(empty[:5])}")
    return model
