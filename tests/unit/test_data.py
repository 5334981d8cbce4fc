"""Data preparation, readers and versions (pure logic, no servers)."""

import json

import pytest

from tasks.data import (
    DataFormatError,
    DatasetPaths,
    data_version,
    prepare_xquad,
    read_jsonl,
    split_articles,
    xquad_records,
)

SQUAD = {
    "data": [
        {
            "title": f"Article_{a}",
            "paragraphs": [
                {
                    "context": f"Paragraph {a}-{p} says the answer is {a * 10 + p}.",
                    "qas": [
                        {
                            "id": f"q{a}{p}",
                            "question": f"What is the answer of {a}-{p}?",
                            "answers": [{"text": str(a * 10 + p), "answer_start": 0}],
                        }
                    ],
                }
                for p in range(2)
            ],
        }
        for a in range(5)
    ]
}


def test_records_carry_every_corpus_field():
    corpus, questions = xquad_records(SQUAD, ["public"])
    assert len(corpus) == 10 and len(questions) == 10
    assert set(corpus[0]) == {"id", "title", "text", "source", "updated_at", "groups"}
    assert questions[3]["passage_id"] == corpus[3]["id"]


def test_split_by_article_never_straddles(tmp_path):
    raw = tmp_path / "raw.json"
    raw.write_text(json.dumps(SQUAD))
    paths = prepare_xquad(raw, tmp_path / "out", 0.4, 1, ["public"])
    train = {r["article"] for r in read_jsonl(paths.train)}
    evaluation = {r["article"] for r in read_jsonl(paths.eval)}
    assert train and evaluation and not train & evaluation
    assert len(evaluation) == 2


def test_split_is_deterministic_and_keeps_a_training_article():
    titles = [f"t{i}" for i in range(10)]
    assert split_articles(titles, 0.3, 5) == split_articles(titles, 0.3, 5)
    assert len(split_articles(titles, 0.99, 5)) == 9
    with pytest.raises(ValueError):
        split_articles(["only"], 0.5, 1)


def test_bad_json_line_is_named(tmp_path):
    path = tmp_path / "corpus.jsonl"
    path.write_text('{"id": "a"}\n{not json}\n')
    with pytest.raises(DataFormatError, match=r"corpus.jsonl, line 2: rule 'valid JSON'"):
        read_jsonl(path)


def test_data_version_follows_content(tmp_path):
    raw = tmp_path / "raw.json"
    raw.write_text(json.dumps(SQUAD))
    paths = prepare_xquad(raw, tmp_path / "out", 0.4, 1, ["public"])
    first = data_version(paths)
    assert first == data_version(DatasetPaths(paths.corpus, paths.train, paths.eval))
    paths.corpus.write_text(paths.corpus.read_text().replace("Paragraph 0-0", "Paragraph zero"))
    assert data_version(paths) != first
