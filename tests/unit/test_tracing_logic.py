"""Answer tracing and feedback without a server: a dead tracking server means no trace (never
an error), span contents, the query log's migration of databases made before trace ids
existed, rating requests, and the golden set grown from corrections."""

import json
import sqlite3

import pytest
import sqlalchemy as sa

from dualengine import endpoints
from tasks import tracing_steps
from tasks.feedback import FeedbackError, parse_rating
from tasks.golden import GoldenSet, candidate
from tasks.query_log import QUERIES, QueryLog, QueryRecord
from tasks.retrieval import Passage
from tasks.tracing import AnswerTracer, NullSpan, tracking_reachable

TRACE = "tr-" + "0123456789abcdef" * 2


def dead_uri() -> str:
    return f"http://127.0.0.1:{endpoints.free_port()}"


def test_a_dead_tracking_server_gives_an_untraced_scope_quickly(monkeypatch):
    import time

    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", dead_uri())
    monkeypatch.setattr(mlflow.tracking._tracking_service.utils, "_tracking_uri", None)
    tracer = AnswerTracer(probe_timeout_s=0.5)
    started = time.perf_counter()
    with tracer.answer({"question": "q"}, {"model_version": "1"}) as scope:
        assert scope.trace_id is None and isinstance(scope.root, NullSpan)
        with scope.span("retrieval", "RETRIEVER", {"query": "q"}) as span:
            span.set_outputs([{"id": "p1"}])  # no-op, no error
            span.set_attributes({"x": 1})
    assert time.perf_counter() - started < 2.0
    tracer.flush()
    # the probe result is kept: the next answer does not wait for the dead server again
    started = time.perf_counter()
    assert tracer.destination() is None
    assert time.perf_counter() - started < 0.05


def test_reachability_by_scheme():
    assert not tracking_reachable(dead_uri(), 0.5)
    assert tracking_reachable("sqlite:///nowhere.db", 0.5)  # local stores need no probe
    assert AnswerTracer(enabled=False).destination() is None


def test_retrieval_documents_and_generation_usage():
    passage = Passage("p1", "d1", "Normans", "x" * 900, "xquad", ["public"], 0.812345, 0.61)
    [doc] = tracing_steps.documents([passage])
    assert doc["id"] == "p1" and len(doc["page_content"]) == tracing_steps.TEXT_PREVIEW
    assert doc["metadata"] == {
        "doc_id": "d1",
        "title": "Normans",
        "source": "xquad",
        "score": 0.8123,
        "similarity": 0.61,
    }

    class Recorder(NullSpan):
        recording = True

        def set_attributes(self, attributes):
            self.attributes = attributes

        def set_outputs(self, outputs):
            self.outputs = outputs

    from tasks.hybrid import AnswerStyle

    class Engine:
        model_version = "3"

        @staticmethod
        def version_for(style):  # as HybridEngine: "base" where the style is unadapted
            return "3" if style.use_adapter else "base"

    span = Recorder()
    usage = {"input_tokens": 120, "output_tokens": 5}
    style = AnswerStyle("", "Answer.", 8)
    tracing_steps.record_generation(span, Engine, style, "Denver [2]", usage)
    assert span.attributes["model_version"] == "3" and span.attributes["input_tokens"] == 120
    assert span.attributes["answer_style"] == "default" and span.attributes["max_new_tokens"] == 8
    assert span.attributes[tracing_steps.CHAT_USAGE]["total_tokens"] == 125
    assert span.outputs["reply"] == "Denver [2]"
    tracing_steps.record_generation(span, Engine, style, "x", {})  # a generator that does not count
    assert tracing_steps.CHAT_USAGE not in span.attributes
    filings = AnswerStyle("sec10q", "Answer in full.", 160, use_adapter=False)
    tracing_steps.record_generation(span, Engine, filings, "Net sales [1]", usage)
    assert span.attributes["model_version"] == "base"  # the base model answered this corpus
    assert span.attributes["answer_style"] == "sec10q"
    idle = NullSpan()  # untraced: nothing is built or set
    tracing_steps.record_generation(idle, Engine, style, "x", usage)
    tracing_steps.record_retrieval(idle, [passage])
    assert not hasattr(idle, "attributes") and not hasattr(idle, "outputs")


def old_log(path):
    """A query log as the release before trace ids created it."""
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE queries (id INTEGER PRIMARY KEY AUTOINCREMENT, ts DATETIME NOT NULL, "
        "question TEXT NOT NULL, embedding BLOB, retrieved_ids TEXT NOT NULL, "
        "retrieved_scores TEXT NOT NULL, top_similarity FLOAT, answer TEXT NOT NULL, "
        "answered BOOLEAN NOT NULL, latency_ms FLOAT NOT NULL, retrieval_ms FLOAT, "
        "generation_ms FLOAT, conflict BOOLEAN, closed_book_answer TEXT, groups TEXT NOT NULL, "
        "model_version VARCHAR(64), index_collection VARCHAR(200), caller VARCHAR(64))"
    )
    conn.execute(
        "INSERT INTO queries (ts, question, retrieved_ids, retrieved_scores, answer, answered, "
        "latency_ms, groups) VALUES ('2026-01-01 00:00:00', 'old?', '[]', '[]', 'a', 1, 5.0, "
        "'[\"public\"]')"
    )
    conn.commit()
    conn.close()


def test_query_log_migrates_an_old_database_and_keeps_its_rows(tmp_path):
    path = tmp_path / "old.db"
    old_log(path)
    log = QueryLog(f"sqlite:///{path}")
    log.record(
        QueryRecord(
            question="new?",
            embedding=None,
            retrieved_ids=["p1"],
            retrieved_scores=[0.5],
            answer="b",
            answered=True,
            latency_ms=3.0,
            groups=["public"],
            trace_id="tr-abc",
        )
    )
    rows = log.read()
    assert [r["question"] for r in rows] == ["old?", "new?"]
    assert rows[0]["trace_id"] is None and rows[1]["trace_id"] == "tr-abc"
    columns = {c["name"] for c in sa.inspect(log._engine).get_columns("queries")}
    assert {c.name for c in QUERIES.columns} <= columns
    log.close()
    again = QueryLog(f"sqlite:///{path}")  # a second open adds nothing and loses nothing
    assert again.count() == 2
    again.close()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("nonsense", True, False, None), "not an answer's trace id"),
        ((TRACE, False, False, None), "exactly one of --good or --bad"),
        ((TRACE, True, True, None), "exactly one of --good or --bad"),
        ((TRACE, True, False, "1066"), "--correction goes with --bad"),
        ((TRACE, False, True, "   "), "--correction is empty"),
        ((TRACE, False, True, "x" * 501), "at most 500"),
    ],
)
def test_wrong_rating_requests_are_refused_with_a_message(args, message):
    with pytest.raises(FeedbackError, match=message):
        parse_rating(*args, user="ann", max_chars=500)


def test_a_rating_request_that_makes_sense():
    rating = parse_rating(" " + TRACE, False, True, " 1066 ", user="ann", max_chars=500)
    assert (rating.trace_id, rating.label, rating.correction) == (TRACE, "bad", "1066")
    with pytest.raises(FeedbackError, match="needs a user"):
        parse_rating(TRACE, True, False, None, user=" ", max_chars=500)


RULES = {"question_min_chars": 3, "question_max_chars": 1000, "answer_max_chars": 500}
PASSAGES = [
    {"passage_id": "xquad-02-00#0", "text": "Rollo's men settled in Normandy."},
    {"passage_id": "xquad-02-01#2", "doc_id": "xquad-02-01", "text": "It was in 911 that..."},
]


def test_corrections_grow_a_versioned_deduplicated_golden_set(tmp_path):
    golden = GoldenSet(tmp_path)
    assert golden.items() == [] and golden.version() is None
    first = candidate("When did they settle?", "911", ["public"], PASSAGES, TRACE)
    assert first["relevant_ids"] == ["xquad-02-01", "xquad-02-00"]  # the backing one first
    assert first["supported_by_passages"] and first["groups"] == ["public"]
    added = golden.add(first, RULES, None)
    assert (added.status, added.size) == ("added", 1) and added.version
    again = candidate("  when did THEY settle ", "in 911", ["public"], PASSAGES, TRACE)
    assert golden.add(again, RULES, None).status == "duplicate"
    other_groups = candidate("When did they settle?", "911", ["finance"], PASSAGES, TRACE)
    grown = golden.add(other_groups, RULES, None)
    assert grown.status == "added" and grown.version != added.version and grown.size == 2
    too_short = candidate("Hm", "911", ["public"], PASSAGES, TRACE)
    refused = golden.add(too_short, RULES, None)
    assert refused.status == "invalid" and "question" in refused.reason
    assert [r["groups"] for r in golden.items()] == [["public"], ["finance"]]
    history = [json.loads(line) for line in golden.history.read_text().splitlines()]
    assert [h["size"] for h in history] == [1, 2] and history[-1]["version"] == grown.version


FEEDBACK_RULE = {"warn": 0.3, "degraded": 0.5, "min_ratings": 20, "window_hours": 168}


@pytest.mark.parametrize(
    ("ratings", "status", "value"),
    [
        (["bad"] * 30, "degraded", 1.0),
        (["bad"] * 8 + ["good"] * 12, "warn", 0.4),
        (["bad"] * 2 + ["good"] * 28, "ok", 2 / 30),
        (["bad"] * 19, "insufficient-data", None),  # too few ratings to judge
        ([], "insufficient-data", None),
        (["bad"] * 10 + [None, "meh"] * 10 + ["good"] * 10, "degraded", 0.5),  # junk ignored
    ],
)
def test_negative_feedback_rate(ratings, status, value):
    from tasks.monitoring import negative_feedback_rate

    signal = negative_feedback_rate(ratings, FEEDBACK_RULE)
    assert signal.engine == "behaviour" and signal.status == status
    assert signal.value == (None if value is None else pytest.approx(value))


def test_ratings_reach_the_query_log_rows_of_their_trace(tmp_path):
    from datetime import UTC, datetime, timedelta

    log = QueryLog(f"sqlite:///{tmp_path / 'q.db'}")
    for n in range(3):
        log.record(
            QueryRecord(
                question=f"q{n}?",
                embedding=None,
                retrieved_ids=[],
                retrieved_scores=[],
                answer="a",
                answered=True,
                latency_ms=1.0,
                groups=["public"],
                trace_id=f"tr-{n}",
            )
        )
    assert log.rate("tr-1", "bad", "right") == 1
    assert log.rate("tr-2", "good", None) == 1
    assert log.rate("tr-unknown", "bad", None) == 0
    assert log.ratings() == ["bad", "good"]
    assert log.ratings(since=datetime.now(UTC) + timedelta(minutes=1)) == []
    row = next(r for r in log.read() if r["trace_id"] == "tr-1")
    assert (row["feedback"], row["correction"]) == ("bad", "right") and row["feedback_ts"]
    log.close()


def test_quotes_are_highlighted_and_everything_else_escaped():
    from dualengine.webpages import highlight, sparkline

    html = str(highlight("In 911 <b>Rollo</b> settled; in 911 again.", "in 911"))
    assert html.count("<mark>") == 2 and "&lt;b&gt;Rollo&lt;/b&gt;" in html
    assert str(highlight("<i>x</i>", "")) == "&lt;i&gt;x&lt;/i&gt;"
    svg = str(sparkline([0.1, None, 0.5, 0.3]))
    assert svg.startswith("<svg") and svg.count(",") == 3  # three points, the gap skipped
    assert "polyline" not in str(sparkline([None, None]))


def test_ui_groups_are_denied_unless_allowed(settings):
    from dualengine.webapp import Refused, allowed_groups, pick_groups

    allowed = allowed_groups(settings)
    assert pick_groups(settings, [allowed[0], f" {allowed[0]} "]) == [allowed[0]]
    with pytest.raises(Refused, match="at least one group"):
        pick_groups(settings, [])
    with pytest.raises(Refused, match="not allowed") as refused:
        pick_groups(settings, [allowed[0], "admins"])
    assert refused.value.status == 403


def test_the_operator_view_draws_a_sparkline_per_signal():
    """A signal's `values` key, not the dict method of that name (it crashed the page once
    monitor runs existed)."""
    from dualengine.webpages import environment, render

    monitor = {
        "runs": 2,
        "latest_time": "2026-11-27 16:00",
        "status": {"knowledge": "ok", "behaviour": "warn"},
        "signals": [
            {
                "engine": "behaviour",
                "name": "query_drift",
                "latest": 0.04,
                "values": [0.01, None, 0.04],
            }
        ],
    }
    html = render(environment(), "operator", monitor=monitor, rows=[])
    assert 'class="sparkline"' in html and "polyline" in html and 'id="recent"' in html
