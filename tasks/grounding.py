"""How well an answer is grounded in passages: support checks, quotes, a faithfulness proxy,
and the oracle passage of a question (the window of its gold document that holds the answer)."""

from __future__ import annotations

import re
from typing import Any

from tasks.evaluation import normalize_answer
from tasks.raft import answer_window

STOPWORDS = frozenset(
    {
        "a",
        "an",
        "the",
        "of",
        "in",
        "on",
        "at",
        "to",
        "for",
        "from",
        "by",
        "with",
        "and",
        "or",
        "but",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "it",
        "its",
        "this",
        "that",
        "these",
        "those",
        "as",
        "not",
        "no",
        "into",
        "than",
        "then",
        "there",
        "their",
        "they",
        "he",
        "she",
        "his",
        "her",
        "we",
        "you",
        "your",
        "i",
        "our",
    }
)
_SENTENCE = re.compile(r"(?<=[.!?;])\s+|\n+")


def content_words(text: str) -> list[str]:
    """Normalised words without stop words: what a faithfulness check should find."""
    return [w for w in normalize_answer(text).split() if w not in STOPWORDS]


def supports(passage_text: str, answer: str) -> bool:
    """True when the passage contains the answer's normalised words in order."""
    needle = normalize_answer(answer)
    return bool(needle) and needle in normalize_answer(passage_text)


def supported_share(answer: str, passages: list[str]) -> float:
    """Faithfulness proxy: the share of the answer's content words found in the passages.

    An answer without content words (empty, or a refusal reduced to stop words) counts as
    fully supported: it asserts nothing the passages would have to back."""
    words = content_words(answer)
    if not words:
        return 1.0
    vocabulary = set(content_words(" ".join(passages)))
    return sum(w in vocabulary for w in words) / len(words)


def best_quote(passage_text: str, answer: str) -> str:
    """The passage's sentence that shares most content words with the answer (verbatim)."""
    wanted = set(content_words(answer))
    sentences = [s.strip() for s in _SENTENCE.split(passage_text) if s.strip()]
    if not sentences:
        return ""
    return max(sentences, key=lambda s: (len(wanted & set(content_words(s))), -len(s)))


def oracle_passage(document: dict[str, Any], answer: str, words: int) -> dict[str, Any]:
    """The gold document's best `words`-word window for the answer.

    Where the answer occurs verbatim (extractive QA) the window is centred on it; otherwise
    (long-form answers, e.g. the SEC set) it is the window with most of the answer's content
    words, slid in half-window steps."""
    text = str(document["text"])
    base = {"passage_id": str(document["id"]), "title": str(document.get("title") or "")}
    if answer and answer.lower() in text.lower():
        return base | {"text": answer_window(text, answer, words)}
    tokens = text.split()
    wanted = set(content_words(answer))
    best, best_hits = 0, -1
    for start in range(0, max(1, len(tokens) - words + 1), max(1, words // 2)):
        hits = len(wanted & set(content_words(" ".join(tokens[start : start + words]))))
        if hits > best_hits:
            best, best_hits = start, hits
    return base | {"text": " ".join(tokens[best : best + words])}
