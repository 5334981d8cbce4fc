"""Great Expectations suites that gate every dataset before an engine consumes it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from tasks.data import DataFormatError, read_jsonl

ISO_8601 = r"^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?$"


@dataclass
class RuleFailure:
    """One failed expectation: which rule, how many rows, and a few of them."""

    rule: str
    column: str
    unexpected_count: int
    sample: list[dict[str, Any]]


@dataclass
class ValidationReport:
    """The outcome of one dataset's suite."""

    dataset: str
    path: str
    rows: int
    evaluated: int
    failures: list[RuleFailure] = field(default_factory=list)

    @property
    def success(self) -> bool:
        return not self.failures

    def markdown(self) -> str:
        status = "passed" if self.success else "FAILED"
        lines = [
            f"### Dataset `{self.dataset}`: {status}",
            f"File `{self.path}`: {self.rows} records, {self.evaluated} rules checked.",
        ]
        for failure in self.failures:
            lines.append(
                f"- rule `{failure.rule}` on `{failure.column}`: "
                f"{failure.unexpected_count} failing records, e.g. {failure.sample}"
            )
        return "\n".join(lines)

    def message(self) -> str:
        parts = [
            f"{self.path} (dataset '{self.dataset}'): rule '{f.rule}' on column '{f.column}' "
            f"failed for {f.unexpected_count} records, e.g. {f.sample}"
            for f in self.failures
        ]
        return "; ".join(parts)


class DatasetValidationError(RuntimeError):
    """Raised when a dataset fails its suite; nothing downstream may run."""

    def __init__(self, reports: list[ValidationReport]):
        self.reports = reports
        failed = [r for r in reports if not r.success]
        super().__init__(" | ".join(r.message() for r in failed))


class InputRejected(DatasetValidationError):
    """Bad input found before any suite ran (its message names file, record and rule)."""

    def __init__(self, message: str):
        self.reports = []
        RuntimeError.__init__(self, message)


def _expectations(dataset: str, rules: dict[str, Any], known_ids: list[str] | None) -> list[Any]:
    """The expectation list for a dataset kind ('corpus', 'train' or 'eval')."""
    import great_expectations as gx

    e = gx.expectations
    if dataset == "corpus":
        return [
            e.ExpectColumnValuesToNotBeNull(column="id"),
            e.ExpectColumnValuesToBeUnique(column="id"),
            e.ExpectColumnValuesToNotBeNull(column="title"),
            e.ExpectColumnValuesToNotBeNull(column="text"),
            e.ExpectColumnValueLengthsToBeBetween(
                column="text", min_value=1, max_value=rules["corpus_max_chars"]
            ),
            e.ExpectColumnValuesToMatchRegex(column="updated_at", regex=ISO_8601),
            e.ExpectColumnValuesToNotBeNull(column="source"),
            e.ExpectColumnValuesToBeBetween(column="group_count", min_value=1),
        ]
    question_rules = [
        e.ExpectColumnValuesToNotBeNull(column="id"),
        e.ExpectColumnValuesToBeUnique(column="id"),
        e.ExpectColumnValuesToNotBeNull(column="question"),
        e.ExpectColumnValueLengthsToBeBetween(
            column="question",
            min_value=rules["question_min_chars"],
            max_value=rules["question_max_chars"],
        ),
        e.ExpectColumnValuesToNotBeNull(column="answer"),
        e.ExpectColumnValueLengthsToBeBetween(
            column="answer", min_value=1, max_value=rules["answer_max_chars"]
        ),
    ]
    id_column = "passage_id" if dataset == "train" else "first_relevant_id"
    if known_ids is not None:
        question_rules.append(e.ExpectColumnValuesToBeInSet(column=id_column, value_set=known_ids))
    return question_rules


def _frame(dataset: str, records: list[dict[str, Any]]) -> pd.DataFrame:
    """Records as a DataFrame with the derived columns the rules look at."""
    required = {
        "corpus": ["id", "title", "text", "source", "updated_at", "groups"],
        "train": ["id", "question", "answer", "passage_id"],
        "eval": ["id", "question", "answer", "relevant_ids"],
    }[dataset]
    frame = pd.DataFrame.from_records(records)
    for column in required:
        if column not in frame.columns:
            frame[column] = None
    if dataset == "corpus":
        frame["group_count"] = frame["groups"].map(
            lambda g: len(g) if isinstance(g, list) and all(isinstance(x, str) for x in g) else 0
        )
    if dataset == "eval":
        frame["first_relevant_id"] = frame["relevant_ids"].map(
            lambda ids: ids[0] if isinstance(ids, list) and ids else None
        )
    for column in ("id", "passage_id", "first_relevant_id"):
        if column in frame.columns:
            frame[column] = frame[column].map(lambda v: None if v is None else str(v))
    return frame


def run_suite(name: str, frame: pd.DataFrame, expectations: list[Any]):
    """Validate a DataFrame against a list of expectations in an ephemeral GX context."""
    import great_expectations as gx

    context = gx.get_context(mode="ephemeral")
    batch = (
        context.data_sources.add_pandas(name=f"{name}_source")
        .add_dataframe_asset(name=name)
        .add_batch_definition_whole_dataframe(f"{name}_batch")
        .get_batch(batch_parameters={"dataframe": frame})
    )
    suite = gx.ExpectationSuite(name=f"{name}_suite", expectations=expectations)
    return batch.validate(suite, result_format={"result_format": "COMPLETE"})


def failed_outcomes(result):
    """(expectation type, column, unexpected row indices) of every failed expectation."""
    for outcome in result.results:
        if outcome.success:
            continue
        config = outcome.expectation_config
        indices = [int(i) for i in outcome.result.get("unexpected_index_list") or []]
        yield config.type, str(config.kwargs.get("column", "")), indices, outcome


def validate_records(
    dataset: str,
    path: Path,
    records: list[dict[str, Any]],
    rules: dict[str, Any],
    known_ids: list[str] | None = None,
    sample_size: int = 3,
) -> ValidationReport:
    """Run the dataset's GX suite on records and report failing rules with sample rows."""

    frame = _frame(dataset, records)
    result = run_suite(dataset, frame, _expectations(dataset, rules, known_ids))
    report = ValidationReport(
        dataset=dataset, path=str(path), rows=len(frame), evaluated=len(result.results)
    )
    for rule, column, indices, outcome in failed_outcomes(result):
        sample = [{"line": i + 1, "id": frame.at[i, "id"]} for i in indices[:sample_size]]
        report.failures.append(
            RuleFailure(
                rule=rule,
                column=column,
                unexpected_count=int(outcome.result.get("unexpected_count") or len(indices)),
                sample=sample,
            )
        )
    return report


def validate_file(
    dataset: str, path: Path, rules: dict[str, Any], known_ids: list[str] | None = None
) -> ValidationReport:
    """Read a JSONL dataset and validate it; unreadable lines become a failed report."""
    try:
        records = read_jsonl(path)
    except DataFormatError as exc:
        return ValidationReport(
            dataset=dataset,
            path=str(path),
            rows=0,
            evaluated=1,
            failures=[RuleFailure("valid JSONL", "*", 1, [{"error": str(exc)}])],
        )
    if not records:
        return ValidationReport(
            dataset=dataset,
            path=str(path),
            rows=0,
            evaluated=1,
            failures=[RuleFailure("non-empty dataset", "*", 1, [])],
        )
    return validate_records(dataset, path, records, rules, known_ids)


def _example_frame(examples: list[dict[str, Any]], count_tokens) -> pd.DataFrame:
    from tasks.pii import find_pii

    rows = []
    for e in examples:
        text = "\n".join(
            [e.get("question") or "", e.get("target") or ""]
            + [p.get("text", "") for p in e.get("passages") or []]
        )
        pii = find_pii(text)
        rows.append(
            {
                "id": e.get("id"),
                "question": e.get("question"),
                "target": e.get("target"),
                "min_tokens": count_tokens(e),
                "pii_count": sum(len(v) for v in pii.values()),
                "pii_kinds": ",".join(sorted(pii)),
            }
        )
    return pd.DataFrame.from_records(rows)


def validate_training_examples(
    dataset: str,
    path: Path,
    examples: list[dict[str, Any]],
    count_tokens,
    max_length: int,
    sample_size: int = 5,
) -> ValidationReport:
    """GX suite for built training data: non-empty, fits the model's context, no PII.

    count_tokens(example) gives the tokens of the question and target without passages (the
    part that can never be cut). A failure names the records and, for PII, the kinds found."""
    import great_expectations as gx

    if not examples:
        return ValidationReport(
            dataset, str(path), 0, 1, [RuleFailure("non-empty dataset", "*", 1, [])]
        )
    frame = _example_frame(examples, count_tokens)
    e = gx.expectations
    result = run_suite(
        f"{dataset}_examples",
        frame,
        [
            e.ExpectColumnValuesToNotBeNull(column="id"),
            e.ExpectColumnValuesToBeUnique(column="id"),
            e.ExpectColumnValueLengthsToBeBetween(column="question", min_value=1),
            e.ExpectColumnValueLengthsToBeBetween(column="target", min_value=1),
            e.ExpectColumnValuesToBeBetween(column="min_tokens", min_value=1, max_value=max_length),
            e.ExpectColumnValuesToBeBetween(column="pii_count", min_value=0, max_value=0),
        ],
    )
    report = ValidationReport(
        dataset=dataset, path=str(path), rows=len(frame), evaluated=len(result.results)
    )
    for rule, column, indices, _outcome in failed_outcomes(result):
        sample = []
        for i in indices[:sample_size]:
            row = {"line": i + 1, "id": frame.at[i, "id"]}
            if column == "pii_count":
                row["pii"] = frame.at[i, "pii_kinds"]
            sample.append(row)
        name = "no PII" if column == "pii_count" else rule
        report.failures.append(RuleFailure(name, column, len(indices), sample))
    return report
