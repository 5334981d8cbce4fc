"""Prompts shared by training, evaluation and answering: question + numbered passages."""

from __future__ import annotations

from typing import Any

PASSAGE_WORD_LIMIT = 160


def context_block(passages: list[dict[str, Any]], word_limit: int | None = None) -> str:
    """Numbered passages with their ids, each cut to word_limit words (None: whole)."""
    lines = []
    for number, passage in enumerate(passages, start=1):
        words = passage["text"].split()
        text = " ".join(words if word_limit is None else words[:word_limit])
        lines.append(f"[{number}] ({passage['passage_id']}) {passage.get('title', '')}: {text}")
    return "\n".join(lines)


def messages_for(
    system: str, question: str, passages: list[dict[str, Any]], word_limit: int | None = None
) -> list[dict[str, str]]:
    """Chat messages for a grounded question (no passages = closed-book)."""
    if passages:
        user = f"Context:\n{context_block(passages, word_limit)}\n\nQuestion: {question}"
    else:
        user = f"Question: {question}"
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def prompt_ids(tokenizer, messages: list[dict[str, str]]) -> list[int]:
    """Token ids of the chat prompt, ending where the assistant's answer starts."""
    if getattr(tokenizer, "chat_template", None):
        ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        if isinstance(ids, dict) or hasattr(ids, "keys"):
            ids = ids["input_ids"]
        return list(ids)
    text = "\n\n".join(m["content"] for m in messages) + "\n\nAnswer:"
    return tokenizer(text, add_special_tokens=True)["input_ids"]


def fit_prompt(
    tokenizer,
    system: str,
    question: str,
    passages: list[dict[str, Any]],
    budget: int,
) -> list[int]:
    """Prompt ids within `budget` tokens: whole passages when they fit (the training shape),
    else shorten every passage (160 words, then down to 48), then drop trailing passages, then
    shorten the last one further. Training never relies on the cuts: `prompt_fits` drops
    examples whose whole prompt does not fit instead."""
    kept = list(passages)
    ids = prompt_ids(tokenizer, messages_for(system, question, kept))
    if len(ids) <= budget:
        return ids
    limit = PASSAGE_WORD_LIMIT
    while True:
        ids = prompt_ids(tokenizer, messages_for(system, question, kept, limit))
        if len(ids) <= budget:
            return ids
        if limit > 48:
            limit = max(48, int(limit * 0.8))
        elif len(kept) > 1:
            kept = kept[:-1]
        elif limit > 12:
            limit //= 2
        else:
            return ids[-budget:]


def prompt_fits(
    tokenizer, system: str, question: str, passages: list[dict[str, Any]], budget: int
) -> bool:
    """Whether the prompt with every passage whole fits `budget` tokens."""
    return len(prompt_ids(tokenizer, messages_for(system, question, passages))) <= budget


def clean_answer(text: str) -> str:
    """The first line of a generation, without surrounding quotes or a trailing full stop."""
    line = text.strip().split("\n", 1)[0].strip()
    line = line.strip('"').strip()
    if line.endswith(".") and len(line.split()) <= 8:
        line = line[:-1]
    return line
