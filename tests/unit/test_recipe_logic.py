"""The held-out item builder, whole-chunk RAFT examples and BCa intervals (pure logic)."""

import math

import numpy as np
import pytest

from tasks.gate import bootstrap_ci, paired_difference
from tasks.heldout import gold_passage, heldout_item, oracle_position, recall_of, same_context
from tasks.raft import build_raft_examples, split_citation


def chunk(pid, text="filler words here"):
    return {"passage_id": pid, "title": "T", "text": text, "score": 0.5}


HITS = [chunk("a#0"), chunk("gold#1", "the answer is Rollo"), chunk("b"), chunk("gold#0")]
HITS += [chunk("c#2"), chunk("d"), chunk("e")]
ITEM = {"id": "q1", "question": "Who?", "answer": "Rollo", "relevant_ids": ["gold"]}


def test_heldout_item_contexts_have_the_training_shape():
    gold = gold_passage([chunk("gold#0"), chunk("gold#1", "the answer is Rollo")], "rollo")
    assert gold["passage_id"] == "gold#1"
    item = heldout_item(ITEM, HITS, gold, passages=3, k=5, seed=7)
    assert [p["passage_id"] for p in item["retrieved"]] == ["a#0", "gold#1", "b"]
    assert [p["passage_id"] for p in item["missing"]] == ["a#0", "b", "c#2"]
    # retrieval found the gold chunk: the oracle is the retrieved context, answered once
    assert item["oracle"] == item["retrieved"] and same_context(item["oracle"], item["retrieved"])
    assert item["oracle"][oracle_position(item) - 1]["text"] == "the answer is Rollo"
    assert item == heldout_item(ITEM, HITS, gold, passages=3, k=5, seed=7)  # deterministic
    assert item["recall"] == 1.0 and item["retrieved_ids"] == [h["passage_id"] for h in HITS[:5]]


def test_oracle_puts_the_gold_chunk_among_the_top_chunks_when_retrieval_missed_it():
    gold = chunk("gold#1", "the answer is Rollo")
    missed = [chunk("a#0"), chunk("b"), chunk("c#2"), chunk("d"), chunk("gold#0"), chunk("e")]
    item = heldout_item(ITEM, missed, gold, passages=3, k=5, seed=7)
    oracle = [p["passage_id"] for p in item["oracle"]]
    assert sorted(oracle) == ["a#0", "b", "gold#1"]  # gold among as many passages as retrieved
    assert not same_context(item["oracle"], item["retrieved"])
    positions = {
        oracle_position(heldout_item(ITEM | {"id": f"q{i}"}, missed, gold, 3, 5, 7))
        for i in range(30)
    }
    assert positions == {1, 2, 3}  # the gold chunk's position is drawn, not always last
    short = heldout_item(ITEM, missed[:1], gold, passages=3, k=5, seed=7)
    assert sorted(p["passage_id"] for p in short["oracle"]) == ["a#0", "gold#1"]


def test_heldout_item_rejects_items_without_relevant_documents():
    with pytest.raises(ValueError, match="no relevant_ids"):
        heldout_item(ITEM | {"relevant_ids": []}, HITS, chunk("gold#0"), 3, 5, 7)


def test_gold_passage_for_long_form_answers_and_empty_documents():
    chunks = [chunk("d#0", "revenue fell"), chunk("d#1", "net sales grew to 82 billion dollars")]
    assert gold_passage(chunks, "Net sales grew strongly")["passage_id"] == "d#1"
    with pytest.raises(ValueError):
        gold_passage([], "x")


def test_recall_counts_documents_not_chunks():
    assert recall_of(["a#0", "a#1", "b", "gold#2"], ["gold"], 2) == 0.0
    assert recall_of(["a#0", "a#1", "b", "gold#2"], ["gold"], 3) == 1.0
    assert recall_of([], ["gold"], 3) == 0.0


def test_raft_examples_use_whole_chunks_and_the_gold_chunk():
    long_text = "word " * 400
    hits = [chunk("x", long_text), chunk("y", long_text), chunk("gold#0")]
    items = [
        {"id": f"q{i}", "question": "Who?", "answer": "Rollo", "passage_id": "gold"}
        for i in range(20)
    ]
    gold = chunk("gold#1", "the answer is Rollo")
    examples = build_raft_examples(
        items, {}, lambda q: hits, 2, 0.25, seed=3, gold=lambda item: gold
    )
    kept = [e for e in examples if e["oracle_included"]]
    assert kept and len(kept) < len(examples)
    for e in kept:
        ids = [p["passage_id"] for p in e["passages"]]
        assert sorted(ids) == ["gold#1", "x", "y"]  # no chunk of the gold document as distractor
        _, number = split_citation(e["target"])
        assert e["passages"][number - 1]["text"] == gold["text"]
        assert all(p["text"] == long_text for p in e["passages"] if p["passage_id"] != "gold#1")


def _coverage(draw, truth, reps=150, n=40, paired=False):
    """Share of `reps` samples of size n whose 95 % interval holds the true mean."""
    rng = np.random.default_rng(11)
    hits = 0
    for rep in range(reps):
        if paired:  # b = a minus a skewed gain: mean(a - b) = truth
            a = draw(rng, n)
            ci = paired_difference(list(a), list(a - rng.exponential(truth, n)), rep, 999)
        else:
            ci = bootstrap_ci(list(draw(rng, n)), seed=rep, n_boot=999)
        hits += ci["low"] <= truth <= ci["high"]
    return hits / reps


def f1_like(rng, n):
    """Half zeros, the rest 1.0 (60 %) or a partial overlap: mean 0.5 * (0.6 + 0.4 * 0.5)."""
    partial = np.where(rng.random(n) < 0.6, 1.0, rng.random(n))
    return np.where(rng.random(n) < 0.5, 0.0, partial)


def test_bca_intervals_cover_about_95_percent_of_skewed_samples():
    exponential = _coverage(lambda rng, n: rng.exponential(1.0, n), 1.0)
    f1 = _coverage(f1_like, 0.5 * (0.6 + 0.4 * 0.5))
    paired = _coverage(f1_like, 0.1, paired=True)
    for coverage in (exponential, f1, paired):
        assert 0.88 <= coverage <= 0.99, (exponential, f1, paired)


def test_degenerate_samples_give_the_point_not_nan():
    flat = bootstrap_ci([0.4] * 20, seed=1)
    assert flat == pytest.approx({"mean": 0.4, "low": 0.4, "high": 0.4})
    assert bootstrap_ci([0.7], seed=1) == {"mean": 0.7, "low": 0.7, "high": 0.7}
    assert bootstrap_ci([], seed=1) == {"mean": 0.0, "low": 0.0, "high": 0.0}
    same = paired_difference([0.2, 0.9, 0.5], [0.2, 0.9, 0.5], seed=1)
    assert same == {"mean": 0.0, "low": 0.0, "high": 0.0}
    rare = bootstrap_ci([0.0] * 59 + [1.0], seed=1)  # one non-zero value: BCa may be NaN
    assert all(math.isfinite(v) for v in rare.values()) and rare["low"] <= rare["mean"]
    with pytest.raises(ValueError, match="differ in length"):
        paired_difference([1.0], [1.0, 2.0], seed=1)


def test_semantic_score_credits_paraphrases_not_refusals(settings):
    from dualengine.models import embedding_model_path
    from tasks.evaluation import semantic_scores

    gold = "Total net sales rose to $82.9 billion in the quarter."
    model = embedding_model_path(settings)
    close, far, refusal, empty = semantic_scores(
        model,
        [
            "Net sales increased to 82.9 billion dollars",
            "The river flows north.",
            "Not in the documents.",
            " ",
        ],
        [gold] * 4,
    )
    assert close > far + 0.2 and 0.0 <= far <= 1.0
    assert refusal == 0.0 and empty == 0.0
    assert semantic_scores(model, [], []) == []
    with pytest.raises(ValueError, match="gold answers"):
        semantic_scores(model, ["a"], [])


def test_sec_questions_split_by_company_never_share_a_filing():
    from tasks.data import split_by_company

    tickers = ["aapl", "amzn", "intc", "msft", "nvda"]
    rows = [
        {"id": f"q{i}", "relevant_ids": [f"sec10q-2023-q{1 + i % 3}-{tickers[i % 5]}"]}
        for i in range(30)
    ] + [{"id": "both", "relevant_ids": ["sec10q-2023-q1-aapl", "sec10q-2023-q1-msft"]}]
    train, held = split_by_company(rows, 2, seed=7)
    assert len(train) + len(held) == len(rows) and train and held
    trained = {i for r in train for i in r["relevant_ids"]}
    assert not trained & {i for r in held for i in r["relevant_ids"]}
    assert split_by_company(rows, 2, seed=7) == (train, held)
    assert len({i.rsplit("-", 1)[1] for i in trained}) == 2
    assert split_by_company(rows, 0, seed=7) == ([], rows)
    with pytest.raises(ValueError, match="none of 5 to evaluate"):
        split_by_company(rows, 5, seed=7)
