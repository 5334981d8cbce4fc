"""Token-aware chunking with semantic-text-splitter's Markdown splitter.

Chunks are measured in the embedding model's own tokens, overlap by a set number of tokens and
break at the highest semantic level that fits (section, paragraph, line, sentence, word), so a
heading stays with its text and a table row (one line) is never cut. A chunk that starts inside
a section is prefixed with that section's heading.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

_HEADING = re.compile(r"^(#{1,6})\s+(.+)$", re.MULTILINE)


@lru_cache(maxsize=4)
def _splitter(tokenizer_json: str, max_tokens: int, overlap_tokens: int):
    from semantic_text_splitter import MarkdownSplitter

    if overlap_tokens >= max_tokens:
        raise ValueError("chunking.overlap_tokens must be smaller than chunking.max_tokens")
    return MarkdownSplitter.from_huggingface_tokenizer_str(
        tokenizer_json, capacity=max_tokens, overlap=overlap_tokens
    )


@lru_cache(maxsize=4)
def tokenizer_json(model: str) -> str:
    """The serialized fast tokenizer of the embedding model (chunks are sized in its tokens)."""
    from transformers import AutoTokenizer

    backend = AutoTokenizer.from_pretrained(model).backend_tokenizer
    backend.no_truncation()  # the saved tokenizer truncates/pads to 128, which would hide length
    backend.no_padding()
    return backend.to_str()


def _heading_before(text: str, offset: int) -> str | None:
    last = None
    for match in _HEADING.finditer(text, 0, offset):
        last = match.group(0).strip()
    return last


def split_text(text: str, tokenizer: str, max_tokens: int, overlap_tokens: int) -> list[str]:
    """Chunks of `text`, each at most max_tokens of the given tokenizer (JSON string)."""
    splitter = _splitter(tokenizer, max_tokens, overlap_tokens)
    chunks = []
    for offset, chunk in splitter.chunk_indices(text):
        if not chunk.strip():
            continue
        heading = None if _HEADING.match(chunk) else _heading_before(text, offset)
        chunks.append(f"{heading}\n{chunk}" if heading else chunk)
    return chunks


SPLITTER = "semantic-text-splitter MarkdownSplitter, heading-prefixed, v2"


def chunking_identity(chunking: dict[str, Any]) -> dict[str, Any]:
    """The chunking parameters plus the splitter's identity (a change means a rebuild)."""
    return {**chunking, "splitter": SPLITTER}
