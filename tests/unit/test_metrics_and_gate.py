"""Answer metrics, recall@k, citations and the promotion gate (pure logic)."""

import pytest

from tasks.evaluation import exact_match, normalize_answer, token_f1
from tasks.grounding import supports
from tasks.hybrid import cite
from tasks.prompting import clean_answer
from tasks.retrieval import Passage, recall_at_k


def test_squad_normalisation_and_scores():
    assert normalize_answer("The  Eiffel-Tower!") == "eiffeltower"
    assert exact_match("the Denver Broncos", "Denver Broncos") == 1.0
    assert token_f1("Denver Broncos won", "Denver Broncos") == pytest.approx(0.8)
    assert token_f1("", "x") == 0.0 and token_f1("", "") == 1.0


def test_recall_counts_chunks_of_relevant_documents():
    retrieved = [["a#0", "b"], ["c", "d"], ["e", "f"]]
    relevant = [["a"], ["d"], ["z"]]
    assert recall_at_k(retrieved, relevant, 2) == pytest.approx(2 / 3)
    assert recall_at_k(retrieved, relevant, 1) == pytest.approx(1 / 3)


def test_citations_keep_supporting_and_cited_passages_only():
    passages = [
        Passage("p1", "d1", "T1", "nothing here", "s", ["g"], 0.9),
        Passage("p2", "d2", "T2", "Intro. The answer is 1,234 apples. Outro.", "s", ["g"], 0.5),
        Passage("p3", "d3", "T3", "Unrelated text about pears.", "s", ["g"], 0.4),
    ]
    cited = cite(passages, "1,234 apples", cited=None)
    assert [c.passage_id for c in cited] == ["p2"]
    assert cited[0].supports_answer and cited[0].quote == "The answer is 1,234 apples."
    assert not supports("nothing here", "1,234 apples")
    # a passage the model cites is kept (flagged unsupported), and listed first
    cited = cite(passages, "1,234 apples", cited=3)
    assert [(c.passage_id, c.supports_answer) for c in cited] == [("p3", False), ("p2", True)]


def test_clean_answer_keeps_first_line():
    assert clean_answer(' "Paris."\nmore text') == "Paris"


def test_ranking_metrics_at_document_level():
    from tasks.retrieval import doc_ranking, mrr_at_k, ndcg_at_k, retrieval_metrics

    assert doc_ranking(["a#0", "a#1", "b", "c#3"]) == ["a", "b", "c"]
    retrieved, relevant = [["x", "a#2", "a#3", "b"]], [["a", "b"]]
    assert mrr_at_k(retrieved, relevant, 10) == pytest.approx(0.5)
    assert recall_at_k(retrieved, relevant, 2) == pytest.approx(0.5)
    ideal = 1 + 1 / __import__("math").log2(3)
    got = 1 / __import__("math").log2(3) + 1 / __import__("math").log2(4)
    assert ndcg_at_k(retrieved, relevant, 10) == pytest.approx(got / ideal)
    assert set(retrieval_metrics(retrieved, relevant)) == {
        "recall_at_5",
        "recall_at_10",
        "mrr_at_10",
        "ndcg_at_10",
    }
