"""The golden set grown from people's corrections: candidate questions, validated and versioned.

A correction of an answer becomes a candidate golden question in the evaluation-set format
(`id`, `question`, `answer`, `relevant_ids`) plus where it came from (`trace_id`, the caller's
`groups`, the retrieved `passage_ids`). It is validated by the same Great Expectations suite as
the bundled QA data (tasks/validation.py, dataset `eval`) and de-duplicated by question and
groups. Accepted candidates live in `<state>/golden/golden.jsonl`; every accepted change adds a
line to `history.jsonl` with the new version (the file's md5) and size. The promotion gate
evaluates on them beside the held-out questions; the monitor reports the set's size.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tasks.data import file_digest, read_jsonl
from tasks.grounding import supports

ADDED, DUPLICATE, INVALID = "added", "duplicate", "invalid"


def question_key(question: str, groups: list[str]) -> str:
    """Identity of a golden question: case- and space-insensitive text and the caller's groups."""
    text = re.sub(r"\s+", " ", question).strip().lower().rstrip("?").strip()
    return hashlib.sha256(f"{text}|{','.join(sorted(groups))}".encode()).hexdigest()[:16]


def doc_id(passage_id: str) -> str:
    """The corpus document of a passage (`doc#chunk` → `doc`)."""
    return passage_id.split("#", 1)[0]


def candidate(
    question: str,
    correction: str,
    groups: list[str],
    passages: list[dict[str, Any]],
    trace_id: str,
) -> dict[str, Any]:
    """A candidate golden question: documents whose retrieved text contains the correction
    come first in `relevant_ids`, then the other retrieved documents."""
    backing = [p for p in passages if supports(p.get("text") or "", correction)]
    ordered = backing + [p for p in passages if p not in backing]
    relevant = list(dict.fromkeys(p.get("doc_id") or doc_id(p["passage_id"]) for p in ordered))
    return {
        "id": "fb-" + question_key(question, groups),
        "question": question,
        "answer": correction.strip(),
        "relevant_ids": relevant,
        "passage_ids": [p["passage_id"] for p in passages],
        "groups": sorted(groups),
        "trace_id": trace_id,
        "source": "feedback",
        "supported_by_passages": bool(backing),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }


@dataclass
class GoldenOutcome:
    status: str  # added | duplicate | invalid
    id: str
    version: str | None
    size: int
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


class GoldenSet:
    """The golden-set file in the state folder (one writer at a time, by file lock)."""

    def __init__(self, state_dir: Path) -> None:
        self.folder = Path(state_dir) / "golden"
        self.path = self.folder / "golden.jsonl"
        self.history = self.folder / "history.jsonl"

    def items(self) -> list[dict[str, Any]]:
        return read_jsonl(self.path) if self.path.exists() else []

    def version(self) -> str | None:
        """md5 (first 12) of the current file; None while the set is empty."""
        return file_digest(self.path)[:12] if self.path.exists() else None

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / ".lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def add(
        self, item: dict[str, Any], rules: dict[str, Any], known_ids: list[str] | None
    ) -> GoldenOutcome:
        """Validate (the `eval` GX suite) and add unless the same question and groups exist."""
        from tasks.validation import validate_records

        report = validate_records("eval", self.path, [item], rules, known_ids)
        with self._locked():
            current = self.items()
            if not report.success:
                return GoldenOutcome(
                    INVALID, item["id"], self.version(), len(current), report.message()
                )
            if any(row["id"] == item["id"] for row in current):
                return GoldenOutcome(
                    DUPLICATE,
                    item["id"],
                    self.version(),
                    len(current),
                    "this question (same groups) is already in the golden set",
                )
            current.append(item)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in current))
            os.replace(tmp, self.path)
            version = self.version()
            with open(self.history, "a", encoding="utf-8") as log:
                entry = {"version": version, "size": len(current), "added": item["id"]}
                log.write(json.dumps(entry | {"ts": item["created"]}) + "\n")
            return GoldenOutcome(ADDED, item["id"], version, len(current))
