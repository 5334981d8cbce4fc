"""Answer metrics: SQuAD token-F1, exact match and a semantic score for long answers."""

from __future__ import annotations

import re
import string
from collections import Counter

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """Lower-case, drop punctuation, articles and extra whitespace (the SQuAD rule)."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(prediction: str, gold: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


def token_f1(prediction: str, gold: str) -> float:
    pred_tokens = normalize_answer(prediction).split()
    gold_tokens = normalize_answer(gold).split()
    if not pred_tokens or not gold_tokens:
        return float(pred_tokens == gold_tokens)
    common = Counter(pred_tokens) & Counter(gold_tokens)
    overlap = sum(common.values())
    if overlap == 0:
        return 0.0
    precision = overlap / len(pred_tokens)
    recall = overlap / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def semantic_scores(model: str, predictions: list[str], golds: list[str]) -> list[float]:
    """Cosine of each answer and its gold answer with the embedding model (the bundled
    MiniLM), clipped to [0, 1]: credit for a long-form answer that says the same in other
    words. An empty answer or a refusal scores 0."""
    from tasks.embedding import embed_texts
    from tasks.raft import is_refusal

    if len(predictions) != len(golds):
        raise ValueError(f"{len(predictions)} answers for {len(golds)} gold answers")
    if not predictions:
        return []
    vectors = embed_texts(model, [*predictions, *golds], show=False)
    n = len(predictions)
    return [
        0.0
        if not p.strip() or is_refusal(p)
        else max(0.0, min(1.0, float(vectors[i] @ vectors[n + i])))
        for i, p in enumerate(predictions)
    ]
