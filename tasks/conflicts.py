"""Conflicts between the grounded answer and the model's closed-book answer, fact by fact.

A fact is a number, a year or full date, or a name (a run of capitalised words). The two answers
conflict when both state facts of the same kind and share none of them: e.g. "1,200 employees"
grounded vs "900" closed-book. Wording differences ("the Broncos" vs "Denver Broncos") and an
answer with no fact of that kind are not conflicts. The grounded answer always wins; the
conflict is only reported.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

MONTHS = (
    "january|february|march|april|may|june|july|august|september|october|november|december|"
    "jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec"
)
_DATE = re.compile(
    rf"\b(?:(?:{MONTHS})\.?\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}}|\d{{1,2}}\s+(?:{MONTHS})\.?\s+"
    rf"\d{{4}}|\d{{4}}-\d{{2}}-\d{{2}})\b",
    re.IGNORECASE,
)
_YEAR = re.compile(r"\b(1[5-9]\d\d|20\d\d)\b")
_NUMBER = re.compile(r"(?<![\w.])[-+]?\$?\d[\d,]*(?:\.\d+)?(?:\s?%)?(?![\w])")
_NAME = re.compile(r"\b[A-Z][\w'&.-]*(?:\s+(?:of|de|la|van|von|the|and)?\s*[A-Z][\w'&.-]*)*")
_STOP_NAMES = {"The", "A", "An", "It", "In", "On", "At", "Not", "I", "Yes", "No"}
SCALE = {"thousand": 1e3, "million": 1e6, "billion": 1e9, "trillion": 1e12}


@dataclass
class Conflict:
    kind: str
    grounded: list[str]
    closed_book: list[str]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _number_value(token: str, following: str) -> str:
    """A canonical form: digits without separators, scaled by a following 'million' etc."""
    token = token.replace(" ", "")
    raw = token.replace("$", "").replace(",", "").rstrip("%")
    try:
        value = float(raw)
    except ValueError:
        return token
    word = following.strip().split(" ", 1)[0].lower() if following.strip() else ""
    value *= SCALE.get(word, 1.0)
    return f"{value:g}" + ("%" if token.endswith("%") else "")


def extract_facts(text: str) -> dict[str, set[str]]:
    """Dates, years, numbers and names found in an answer, normalised for comparison."""
    facts: dict[str, set[str]] = {"date": set(), "year": set(), "number": set(), "name": set()}
    rest = text
    for match in _DATE.finditer(text):
        facts["date"].add(re.sub(r"[\s,.]+", " ", match.group(0).lower()).strip())
        rest = rest.replace(match.group(0), " ")
    for match in _YEAR.finditer(rest):
        facts["year"].add(match.group(1))
    no_years = _YEAR.sub(" ", rest)
    for match in _NUMBER.finditer(no_years):
        facts["number"].add(_number_value(match.group(0), no_years[match.end() :]))
    for match in _NAME.finditer(rest):
        words = [w for w in match.group(0).split() if w not in _STOP_NAMES]
        if words and not any(ch.isdigit() for ch in "".join(words)):
            facts["name"].add(" ".join(words).lower())
    return facts


def _names_overlap(a: set[str], b: set[str]) -> bool:
    """Names agree when one contains the other word-wise ("broncos" in "denver broncos")."""
    for x in a:
        for y in b:
            xs, ys = set(x.split()), set(y.split())
            if xs <= ys or ys <= xs:
                return True
    return False


def find_conflict(grounded: str, closed_book: str) -> Conflict | None:
    """The first kind of fact on which the two answers disagree, or None."""
    if not grounded.strip() or not closed_book.strip():
        return None
    a, b = extract_facts(grounded), extract_facts(closed_book)
    for kind in ("date", "year", "number", "name"):
        if not a[kind] or not b[kind]:
            continue
        agree = _names_overlap(a[kind], b[kind]) if kind == "name" else bool(a[kind] & b[kind])
        if not agree:
            return Conflict(kind, sorted(a[kind]), sorted(b[kind]))
    return None
