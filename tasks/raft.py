"""RAFT-style training data: a question, its oracle passage and hard distractors from the index.

For a configured fraction of examples the oracle is left out; then the target is the refusal,
which teaches the model to say so when the context lacks the answer. Otherwise the target is the
answer followed by the number of the passage it comes from, e.g. `Denver Broncos [2]`.
Plain instruction data (instruction, output) is accepted too, for tone and format rules.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from typing import Any

REFUSAL = "Not in the documents."
_CITATION = re.compile(r"\s*\[(\d+)\]\s*[.,;!]?\s*$")  # "answer [2]" or "answer [2]."


def grounded_target(answer: str, position: int) -> str:
    return f"{answer.strip()} [{position}]"


def split_citation(text: str) -> tuple[str, int | None]:
    """`answer [n]` (a closing full stop allowed) → (answer, n); a reply without a marker at
    its end gives (text, None)."""
    match = _CITATION.search(text)
    if not match:
        return text.strip(), None
    return text[: match.start()].strip(), int(match.group(1))


def is_refusal(text: str) -> bool:
    return "not in the documents" in text.lower()


def answer_window(text: str, answer: str, words: int) -> str:
    """At most `words` words of text, centred on the answer when the answer occurs in it."""
    tokens = text.split()
    if len(tokens) <= words:
        return text
    position = text.find(answer)
    if position < 0:
        return " ".join(tokens[:words])
    centre = len(text[:position].split())
    start = max(0, min(len(tokens) - words, centre - words // 2))
    return " ".join(tokens[start : start + words])


def build_raft_examples(
    items: list[dict[str, Any]],
    corpus: dict[str, dict[str, Any]],
    retrieve: Callable[[str], list[dict[str, Any]]],
    distractors: int,
    oracle_missing_fraction: float,
    seed: int,
    passage_words: int = 0,
    gold: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """One example per QA item: shuffled passages (oracle kept or left out) and the target.

    Passages are whole retrieved chunks, as the model sees them when answering; `gold(item)`
    gives the gold passage (the chunk of the gold document holding the answer), else the whole
    gold document is used. Distractors are retrieved chunks of other documents. passage_words
    > 0 cuts every passage to that many words (the oracle around its answer): an old recipe,
    kept for comparisons only."""
    rng = random.Random(seed)
    examples = []
    for item in items:
        oracle_id = str(item["passage_id"])
        oracle = gold(item) if gold else {"passage_id": oracle_id, **corpus[oracle_id]}
        hits = [
            h for h in retrieve(item["question"]) if h["passage_id"].split("#", 1)[0] != oracle_id
        ]
        passages = [_passage(h, words=passage_words) for h in hits[:distractors]]
        keep_oracle = rng.random() >= oracle_missing_fraction
        if keep_oracle:
            passages.append(_passage(oracle, item["answer"], passage_words))
        rng.shuffle(passages)
        if keep_oracle:
            position = 1 + [p["passage_id"] for p in passages].index(str(oracle["passage_id"]))
            target = grounded_target(item["answer"], position)
        else:
            target = REFUSAL
        examples.append(
            {
                "id": str(item["id"]),
                "kind": "raft",
                "question": item["question"],
                "answer": item["answer"],
                "passages": passages,
                "oracle_id": oracle_id,
                "oracle_included": keep_oracle,
                "target": target,
                "article": item.get("article", ""),
            }
        )
    return examples


def encode_raft_examples(
    tokenizer, system: str, examples: list[dict[str, Any]], max_length: int
) -> tuple[list[Any], list[str]]:
    """Training examples whose whole prompt (every passage uncut) and whole target fit
    `max_length` tokens, and the ids of those that did not (dropped, never cut: a cut could
    remove the gold passage or the answer from the prompt)."""
    from tasks.prompting import prompt_fits
    from tasks.training import encode_example

    eos = tokenizer.eos_token or ""
    kept, dropped = [], []
    for e in examples:
        target = len(tokenizer(e["target"] + eos, add_special_tokens=False)["input_ids"])
        prompt = e.get("system") or system  # a corpus with its own answer style brings its own
        fits = target <= max_length // 4 and prompt_fits(
            tokenizer, prompt, e["question"], e["passages"], max_length - target
        )
        if not fits:
            dropped.append(str(e["id"]))
            continue
        kept.append(
            encode_example(tokenizer, prompt, e["question"], e["passages"], e["target"], max_length)
        )
    return kept, dropped


def instruction_examples(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Plain (instruction, output) rows as examples without passages."""
    return [
        {
            "id": str(r.get("id", f"instruction-{i}")),
            "kind": "instruction",
            "question": r["instruction"],
            "answer": r["output"],
            "passages": [],
            "oracle_id": "",
            "oracle_included": False,
            "target": r["output"],
            "article": "",
        }
        for i, r in enumerate(rows)
    ]


def _passage(hit: dict[str, Any], answer: str = "", words: int = 0) -> dict[str, Any]:
    """A passage dict for a prompt: id, title and text (cut only when words > 0)."""
    text = answer_window(hit["text"], answer, words) if words else hit["text"]
    return {"passage_id": hit["passage_id"], "title": hit.get("title", ""), "text": text}
