"""Great Expectations suites on in-memory records (GX runs for real; no servers)."""

from pathlib import Path

from tasks.validation import DatasetValidationError, validate_file, validate_records

RULES = {
    "corpus_max_chars": 200,
    "question_min_chars": 3,
    "question_max_chars": 100,
    "answer_max_chars": 50,
}


def doc(i, **extra):
    record = {
        "id": f"d{i}",
        "title": "T",
        "text": f"text {i}",
        "source": "s",
        "updated_at": "2024-01-02T03:04:05Z",
        "groups": ["public"],
    }
    return record | extra


def test_clean_corpus_passes():
    report = validate_records("corpus", Path("c.jsonl"), [doc(1), doc(2)], RULES)
    assert report.success and report.evaluated >= 8


def test_each_rule_names_file_rule_and_record():
    records = [
        doc(1),
        doc(2, text=""),
        doc(1),
        doc(4, updated_at="last tuesday"),
        doc(5, groups=[]),
        doc(6, text="x" * 500),
    ]
    report = validate_records("corpus", Path("corpus.jsonl"), records, RULES)
    rules = {(f.rule, f.column) for f in report.failures}
    assert ("expect_column_values_to_be_unique", "id") in rules
    assert ("expect_column_value_lengths_to_be_between", "text") in rules
    assert ("expect_column_values_to_match_regex", "updated_at") in rules
    assert ("expect_column_values_to_be_between", "group_count") in rules
    message = DatasetValidationError([report]).args[0]
    assert "corpus.jsonl" in message and "'line': 4, 'id': 'd4'" in message


def test_questions_must_point_at_known_passages(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text('{"id": "q1", "question": "Why?", "answer": "because", "passage_id": "d9"}\n')
    report = validate_file("train", path, RULES, known_ids=["d1"])
    assert not report.success
    assert report.failures[0].rule == "expect_column_values_to_be_in_set"


def test_unreadable_and_empty_files_fail(tmp_path):
    bad = tmp_path / "eval.jsonl"
    bad.write_text("[1, 2]\n")
    assert validate_file("eval", bad, RULES).failures[0].rule == "valid JSONL"
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert validate_file("eval", empty, RULES).failures[0].rule == "non-empty dataset"
