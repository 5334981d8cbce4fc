"""Conflict detection, grounding helpers and the query log (pure logic + a real SQLite file)."""

from datetime import UTC, datetime, timedelta

import pytest

from tasks.conflicts import extract_facts, find_conflict
from tasks.grounding import best_quote, oracle_passage, supported_share
from tasks.query_log import QueryLog, QueryRecord


@pytest.mark.parametrize(
    ("grounded", "closed", "kind"),
    [
        ("1,200 employees", "900 employees", "number"),
        ("$3.5 million", "$3,500,000", None),  # same value, different notation
        ("June 25, 2022", "June 25 2022", None),
        ("June 25, 2022", "July 1, 2023", "date"),
        ("in 1998", "1999", "year"),
        ("Denver Broncos", "the Broncos", None),
        ("Denver Broncos", "Carolina Panthers", "name"),
        ("Denver Broncos", "a football team", None),  # no fact of the same kind
        ("12%", "12 %", None),
    ],
)
def test_conflicts_on_facts_only(grounded, closed, kind):
    found = find_conflict(grounded, closed)
    assert (found.kind if found else None) == kind


def test_fact_extraction_keeps_kinds_apart():
    facts = extract_facts("Apple sold 82,959 million in the quarter ended June 25, 2022 (Tim Cook)")
    assert facts["date"] == {"june 25 2022"}
    assert facts["number"] == {"8.2959e+10"}
    assert "tim cook" in facts["name"] and not facts["year"]
    assert find_conflict("", "900") is None and find_conflict("900", " ") is None


def test_faithfulness_proxy_and_quotes():
    passages = ["The Broncos beat the Panthers 24–10. The game was in Santa Clara."]
    assert supported_share("Broncos beat Panthers", passages) == 1.0
    assert supported_share("Broncos lost in Miami", passages) == pytest.approx(
        1 / 3
    )  # "in" is a stop word
    assert supported_share("the", passages) == 1.0  # asserts nothing
    assert best_quote(passages[0], "Santa Clara") == "The game was in Santa Clara."


def test_oracle_passage_centres_extractive_answers_and_scans_long_ones():
    doc = {"id": "d1", "title": "T", "text": " ".join(f"w{i}" for i in range(500))}
    window = oracle_passage(doc, "w250 w251", 40)
    assert "w250 w251" in window["text"] and len(window["text"].split()) == 40
    # a long-form answer that is not verbatim: the window with most of its content words
    long_form = "In short, w300 and w310 and w320 rose."
    assert "w310" in oracle_passage(doc, long_form, 40)["text"]


def _record(question: str, ts: datetime, conflict: bool | None = None) -> QueryRecord:
    return QueryRecord(
        question=question,
        embedding=[0.5, -0.25, 1.0],
        retrieved_ids=["d#0", "e#1"],
        retrieved_scores=[1.0, 0.4],
        answer="x",
        answered=True,
        latency_ms=12.5,
        groups=["public"],
        conflict=conflict,
        ts=ts,
    )


def test_query_log_round_trip(tmp_path):
    log = QueryLog(f"sqlite:///{tmp_path / 'q.db'}")
    now = datetime.now(UTC)
    log.record(_record("old", now - timedelta(days=2)))
    log.record(_record("new", now, conflict=True))
    rows = log.read()
    assert [r["question"] for r in rows] == ["old", "new"]
    assert rows[1]["embedding"] == [0.5, -0.25, 1.0] and rows[1]["conflict"] is True
    assert rows[1]["retrieved_ids"] == ["d#0", "e#1"] and rows[1]["groups"] == ["public"]
    assert [r["question"] for r in log.read(since=now - timedelta(hours=1))] == ["new"]
    assert [r["question"] for r in log.read(limit=1)] == ["new"]
    assert log.count() == 2
    log.close()
    # a second process (the monitor) reads the same file
    again = QueryLog(f"sqlite:///{tmp_path / 'q.db'}")
    assert again.count() == 2
    again.close()


def test_webhook_signature_verification():
    import json as _json
    import time as _time

    from tasks.webhooks import WebhookRejected, alias_created, sign, verify

    body = _json.dumps(
        {
            "entity": "model_version_alias",
            "action": "created",
            "data": {"name": "m", "alias": "champion", "version": "3"},
        }
    )
    now = str(int(_time.time()))
    headers = {
        "X-MLflow-Delivery-Id": "d1",
        "X-MLflow-Timestamp": now,
        "X-MLflow-Signature": sign("s3cret", "d1", now, body),
    }
    event = alias_created(verify("s3cret", headers, body.encode()))
    assert (event.model, event.alias, event.version) == ("m", "champion", "3")
    with pytest.raises(WebhookRejected, match="signature"):
        verify("other", headers, body.encode())
    with pytest.raises(WebhookRejected, match="signature"):
        verify("s3cret", headers, body.replace('"3"', '"4"').encode())
    old = str(int(_time.time()) - 3600)
    stale = headers | {
        "X-MLflow-Timestamp": old,
        "X-MLflow-Signature": sign("s3cret", "d1", old, body),
    }
    with pytest.raises(WebhookRejected, match="old"):
        verify("s3cret", stale, body.encode())
    with pytest.raises(WebhookRejected, match="missing"):
        verify("s3cret", {}, body.encode())
    assert alias_created({"entity": "model_version", "action": "created"}) is None
