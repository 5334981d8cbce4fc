"""Document-level corpus validation with Great Expectations: bad documents are quarantined.

Rules: missing id, duplicate id, empty or oversize text, bad timestamp, no access group, and
prompt-injection patterns (instructions aimed at the model, hidden text). Every failing
document is reported with its file, rule and an excerpt; the valid ones continue, and nothing
of a quarantined document reaches the index.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import pandas as pd

from tasks.validation import ISO_8601, failed_outcomes, run_suite

RULE_NAMES = {
    ("expect_column_values_to_not_be_null", "id"): "missing id",
    ("expect_column_values_to_be_unique", "id"): "duplicate id",
    ("expect_column_values_to_be_between", "text_length"): "empty document",
    ("expect_column_value_lengths_to_be_between", "text"): "oversize document",
    ("expect_column_values_to_match_regex", "updated_at"): "bad timestamp",
    ("expect_column_values_to_be_in_set", "timestamp_parses"): "bad timestamp",
    ("expect_column_values_to_be_between", "group_count"): "no access group",
    ("expect_column_values_to_not_match_regex_list", "text"): "prompt injection",
}


@dataclass
class QuarantinedDocument:
    file: str
    id: str | None
    rule: str
    excerpt: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _parses(value: Any) -> bool:
    if not isinstance(value, str) or not re.match(ISO_8601, value):
        return False
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def _frame(docs: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame.from_records(
        [{k: d.get(k) for k in ("id", "text", "updated_at", "groups")} for d in docs]
    )
    frame["id"] = frame["id"].map(lambda v: None if v in (None, "") else str(v))
    frame["text"] = frame["text"].map(lambda v: v if isinstance(v, str) else "")
    frame["text_length"] = frame["text"].map(lambda v: len(v.strip()))
    frame["timestamp_parses"] = frame["updated_at"].map(_parses)
    frame["updated_at"] = frame["updated_at"].map(lambda v: v if isinstance(v, str) else "")
    frame["group_count"] = frame["groups"].map(
        lambda g: len(g) if isinstance(g, list) and all(isinstance(x, str) and x for x in g) else 0
    )
    return frame


def _expectations(rules: dict[str, Any]) -> list[Any]:
    import great_expectations as gx

    e = gx.expectations
    return [
        e.ExpectColumnValuesToNotBeNull(column="id"),
        e.ExpectColumnValuesToBeUnique(column="id"),
        e.ExpectColumnValuesToBeBetween(column="text_length", min_value=1),
        e.ExpectColumnValueLengthsToBeBetween(
            column="text", min_value=0, max_value=rules["corpus_max_chars"]
        ),
        e.ExpectColumnValuesToMatchRegex(column="updated_at", regex=ISO_8601),
        e.ExpectColumnValuesToBeInSet(column="timestamp_parses", value_set=[True]),
        e.ExpectColumnValuesToBeBetween(column="group_count", min_value=1),
        e.ExpectColumnValuesToNotMatchRegexList(
            column="text", regex_list=list(rules["injection_patterns"])
        ),
    ]


def _excerpt(text: str, rule: str, patterns: list[str]) -> str:
    if rule == "prompt injection":
        for pattern in patterns:
            match = re.search(pattern, text)
            if match:
                start = max(0, match.start() - 30)
                return repr(text[start : match.end() + 30])
    return repr(text[:80])


def quarantine(
    docs: list[dict[str, Any]], rules: dict[str, Any]
) -> tuple[list[dict[str, Any]], list[QuarantinedDocument]]:
    """Split documents into (valid, quarantined) with the GX corpus suite."""
    if not docs:
        return [], []
    frame = _frame(docs)
    result = run_suite("corpus_documents", frame, _expectations(rules))
    flagged: dict[int, str] = {}
    for rule_type, column, indices, _outcome in failed_outcomes(result):
        rule = RULE_NAMES.get((rule_type, column), rule_type)
        for index in indices:
            flagged.setdefault(index, rule)
    valid, held = [], []
    for index, doc in enumerate(docs):
        if index in flagged:
            rule = flagged[index]
            held.append(
                QuarantinedDocument(
                    file=str(doc.get("_file") or doc.get("source") or ""),
                    id=None if doc.get("id") in (None, "") else str(doc.get("id")),
                    rule=rule,
                    excerpt=_excerpt(frame.at[index, "text"], rule, rules["injection_patterns"]),
                )
            )
        else:
            valid.append({k: v for k, v in doc.items() if not k.startswith("_")})
    return valid, held


def quarantine_markdown(held: list[QuarantinedDocument], kept: int) -> str:
    lines = [f"## Corpus validation: {kept} documents indexed, {len(held)} quarantined", ""]
    if held:
        lines += ["| file | id | rule | excerpt |", "|---|---|---|---|"]
        lines += [
            f"| `{q.file}` | `{q.id}` | {q.rule} | {q.excerpt.replace('|', '¦')[:120]} |"
            for q in held
        ]
    return "\n".join(lines)
