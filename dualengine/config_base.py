"""The building blocks of dualengine.config: the strict section base, value types, the
cross-field and cron checks, and ParamsError with one line per problem."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo

from dualengine.resolve import GROUP_NAME

PositiveInt = Annotated[int, Field(gt=0)]
Count = Annotated[int, Field(ge=0)]
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
Text = Annotated[str, Field(min_length=1)]
Group = Annotated[str, Field(pattern=f"^{GROUP_NAME.pattern}$")]
# a Weaviate collection name: a capital letter, then letters, digits and underscores
CollectionName = Annotated[str, Field(pattern=r"^[A-Z][A-Za-z0-9_]{0,200}$")]
# the hybrid metrics of tasks.retrieval.retrieval_metrics (a unit test keeps them in step)
RetrievalMetric = Literal["recall_at_5", "recall_at_10", "mrr_at_10", "ndcg_at_10"]


class ParamsError(ValueError):
    """A params file that cannot be used: the file, each bad key path and the reason."""

    def __init__(self, path: Path | str, problems: list[str]):
        self.path = str(path)
        self.problems = problems
        lines = "\n".join(f"  {p}" for p in problems)
        super().__init__(f"{path}: invalid params ({len(problems)} problem(s)):\n{lines}")


class Section(BaseModel):
    """A params.yaml block: unknown keys are refused, values keep their YAML types."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def sample_names(value: list[str]) -> list[str]:
    from tasks.data import SAMPLE_NAMES

    unknown = [v for v in value if v not in SAMPLE_NAMES]
    if unknown:
        raise ValueError(f"unknown sample(s) {unknown} (known: {', '.join(SAMPLE_NAMES)})")
    return value


def bound(other: str, *, above: bool, strict: bool = False) -> Any:
    """A field validator: the value may not exceed (or, with above, fall below) the earlier
    field `other` (an error names the field itself, not its section)."""

    def check(cls: type, value: Any, info: ValidationInfo) -> Any:
        bound = info.data.get(other)
        if bound is None:
            return value
        bad = (value < bound) if above else (value > bound or (strict and value == bound))
        if bad:
            word = "below" if above else ("not smaller than" if strict else "above")
            raise ValueError(f"{value} is {word} {other} ({bound})")
        return value

    return classmethod(check)


CRON_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))


def cron(value: str) -> str:
    """Five cron fields with numbers in range (Prefect checks the rest when deploying)."""
    fields = value.split()
    if len(fields) != 5:
        raise ValueError(f"{value!r} is not a cron schedule (five fields: m h dom mon dow)")
    for field, (low, high) in zip(fields, CRON_RANGES, strict=True):
        if not re.fullmatch(r"[0-9A-Za-z*/,\-]+", field) or re.search(r"(?i)\b[hr]\b", field):
            raise ValueError(f"{value!r}: field {field!r} is not a cron field")
        if any(not low <= int(n) <= high for n in re.findall(r"\d+", field.split("/")[0])):
            raise ValueError(f"{value!r}: field {field!r} is outside {low}-{high}")
    return value


REASONS = {"extra_forbidden": "unknown key (a typo?)", "missing": "required key is missing"}


def problems(exc: ValidationError, prefix: str = "") -> list[str]:
    """One line per validation error: `key.path: reason (got value)`."""
    out = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(part) for part in (prefix, *error["loc"]) if part != "")
        reason = REASONS.get(error["type"], error["msg"].removeprefix("Value error, "))
        shown = (
            "" if error["type"] in (*REASONS, "value_error") else f" (got {error['input']!r:.60})"
        )
        out.append(f"{where or '(top level)'}: {reason}{shown}")
    return out
