"""Answer metrics (SQuAD token-F1 and exact match) and the held-out evaluation loop."""

from __future__ import annotations

import re
import string
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from dualengine.progress import progress

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


@dataclass
class EvaluationResult:
    f1: float
    em: float
    recall_at_k: float
    k: int
    rows: list[dict[str, Any]] = field(default_factory=list)

    def metrics(self) -> dict[str, float]:
        return {
            "eval_f1": self.f1,
            "eval_em": self.em,
            f"retrieval_recall_at_{self.k}": self.recall_at_k,
        }


def evaluate_answers(
    generator,
    system: str,
    items: list[dict[str, Any]],
    contexts: list[list[dict[str, Any]]],
    retrieved_ids: list[list[str]],
    k: int,
    max_new_tokens: int,
    batch_size: int = 8,
) -> EvaluationResult:
    """Generate an answer per held-out question from its retrieved passages and score it."""
    from tasks.retrieval import recall_at_k

    rows: list[dict[str, Any]] = []
    with progress("evaluating held-out questions", len(items), key="evaluation") as bar:
        for start in range(0, len(items), batch_size):
            chunk = items[start : start + batch_size]
            answers = generator.answer_batch(
                system,
                [item["question"] for item in chunk],
                contexts[start : start + batch_size],
                max_new_tokens,
            )
            for item, prediction in zip(chunk, answers, strict=True):
                rows.append(
                    {
                        "id": item["id"],
                        "question": item["question"],
                        "gold": item["answer"],
                        "prediction": prediction,
                        "f1": token_f1(prediction, item["answer"]),
                        "em": exact_match(prediction, item["answer"]),
                    }
                )
            bar.advance(len(chunk))
    n = max(len(rows), 1)
    return EvaluationResult(
        f1=sum(r["f1"] for r in rows) / n,
        em=sum(r["em"] for r in rows) / n,
        recall_at_k=recall_at_k(retrieved_ids, [item["relevant_ids"] for item in items], k),
        k=k,
        rows=rows,
    )
