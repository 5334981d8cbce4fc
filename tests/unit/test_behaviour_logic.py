"""RAFT examples, PII detection, the training-data suite and the promotion gate (no servers)."""

from pathlib import Path

import pytest

from tasks.gate import (
    ModelScores,
    bootstrap_ci,
    decide_promotion,
    format_ok,
    paired_difference,
)
from tasks.pii import find_pii, luhn_valid
from tasks.raft import REFUSAL, build_raft_examples, instruction_examples, split_citation
from tasks.validation import validate_training_examples

CORPUS = {f"p{i}": {"title": f"T{i}", "text": f"Passage {i} text."} for i in range(10)}
ITEMS = [
    {
        "id": f"q{i}",
        "question": f"Question {i}?",
        "answer": f"answer {i}",
        "passage_id": f"p{i}",
        "article": "A",
    }
    for i in range(10)
]


def retrieve(question):
    n = int(question.split()[1].rstrip("?"))
    return [{"passage_id": f"p{(n + j) % 10}", **CORPUS[f"p{(n + j) % 10}"]} for j in range(4)]


def test_raft_examples_cite_the_oracle_or_refuse():
    examples = build_raft_examples(ITEMS, CORPUS, retrieve, 2, 0.3, seed=1)
    assert len(examples) == 10
    refused = [e for e in examples if not e["oracle_included"]]
    assert 0 < len(refused) < 10 and all(e["target"] == REFUSAL for e in refused)
    for e in examples:
        ids = [p["passage_id"] for p in e["passages"]]
        assert e["oracle_id"] not in ids or e["oracle_included"]
        if e["oracle_included"]:
            text, number = split_citation(e["target"])
            assert text == e["answer"] and ids[number - 1] == e["oracle_id"]
            assert len(ids) == 3
        else:
            assert len(ids) == 2 and e["oracle_id"] not in ids
    assert examples == build_raft_examples(ITEMS, CORPUS, retrieve, 2, 0.3, seed=1)


def test_instruction_rows_become_examples():
    [example] = instruction_examples([{"instruction": "Greet politely.", "output": "Hello."}])
    assert example["passages"] == [] and example["target"] == "Hello."


def test_split_citation():
    assert split_citation("Denver Broncos [2]") == ("Denver Broncos", 2)
    assert split_citation("no marker") == ("no marker", None)
    assert split_citation("Denver Broncos [2].") == ("Denver Broncos", 2)
    assert split_citation("In 1066 [3] .") == ("In 1066", 3)
    assert split_citation("[2] is a marker mid-reply, not a citation") == (
        "[2] is a marker mid-reply, not a citation",
        None,
    )


@pytest.mark.parametrize(
    "text,kind",
    [
        ("write to jane.doe@example.com today", "email"),
        ("call +44 20 7946 0958 now", "phone"),
        ("call (415) 555-0132 now", "phone"),
        ("card 4111 1111 1111 1111 on file", "card_number"),
        ("SSN 123-45-6789", "national_id"),
        ("NI number AB 12 34 56 C", "national_id"),
    ],
)
def test_pii_kinds(text, kind):
    assert kind in find_pii(text)


def test_no_pii_in_ordinary_numbers():
    text = (
        "Total net sales 81,797 82,959 293,787 304,182 in 2023; revenue grew 4111 1111 "
        "1111 1112 percent-points; call option 1-2-3."
    )
    assert find_pii(text) == {}
    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111112")


def test_training_suite_blocks_pii_and_overlong_examples():
    examples = [
        {"id": "ok", "question": "Q?", "target": "A [1]", "passages": [{"text": "clean"}]},
        {"id": "leak", "question": "Q?", "target": "A", "passages": [{"text": "a@b.org"}]},
        {"id": "long", "question": "Q " * 300, "target": "A", "passages": []},
    ]
    report = validate_training_examples(
        "train", Path("raft/train.jsonl"), examples, lambda e: len(e["question"].split()), 100
    )
    failures = {f.rule: f for f in report.failures}
    assert failures["no PII"].sample == [{"line": 2, "id": "leak", "pii": "email"}]
    assert failures["expect_column_values_to_be_between"].sample[0]["id"] == "long"


def scores(name, f1, nll, fmt=1.0, refusal=0.5, n=40):
    return ModelScores(
        name,
        None,
        {
            "f1_retrieved": [f1] * n,
            "em_retrieved": [0.0] * n,
            "f1_oracle": [f1] * n,
            "em_oracle": [0.0] * n,
            "nll": [nll] * n,
            "format_ok": [fmt] * n,
            "refusal_when_missing": [refusal] * n,
        },
    )


def test_gate_promotes_only_a_clear_winner():
    better = scores("challenger", 0.5, 1.0)
    base, champion = scores("base", 0.2, 2.0), scores("champion", 0.4, 1.5)
    assert decide_promotion(better, [base, champion], "f1_retrieved", 0.02, 0.05, 1).promote
    worse = scores("challenger", 0.3, 1.0)
    refused = decide_promotion(worse, [base, champion], "f1_retrieved", 0.02, 0.05, 1)
    assert not refused.promote and "vs champion" in refused.reason
    by_nll = decide_promotion(better, [base], "nll", 0.0, 0.05, 1)
    assert by_nll.promote  # lower NLL wins
    # whatever the gate metric, the evidence carries every metric's paired gain per rival
    assert by_nll.gains["base"]["f1_retrieved"]["mean"] == pytest.approx(0.3)
    assert by_nll.gains["base"]["nll"]["mean"] == pytest.approx(1.0)  # a reduction is a gain


def test_gate_refuses_a_guardrail_regression():
    rude = scores("challenger", 0.6, 1.0, refusal=0.1)
    decision = decide_promotion(
        rude, [scores("base", 0.2, 2.0, refusal=0.5)], "f1_retrieved", 0.0, 0.05, 1
    )
    assert not decision.promote and "refusal_when_missing regressed" in decision.reason


def test_bootstrap_intervals():
    ci = bootstrap_ci([0.0, 1.0] * 50, seed=3)
    assert ci["low"] < 0.5 < ci["high"] and ci["mean"] == 0.5
    diff = paired_difference([1.0] * 30, [0.0] * 30, seed=3)
    assert diff["low"] == diff["high"] == 1.0


def test_format_guardrail():
    assert format_ok("Denver Broncos [2]") and not format_ok("") and not format_ok("a\nb")
