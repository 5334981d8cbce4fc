"""Every answer is an MLflow trace on the session's servers: `dualengine ask --json` returns a
trace id whose spans (retrieval, prompt, generation, grounding) the MLflow API shows, the
query log keeps the id, and a dead tracking server costs the trace, never the answer."""

import json

import pytest
from e2e_helpers import cli

from dualengine import endpoints

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

QUESTION = "When did the Normans settle in Normandy?"


def spans_by_name(trace):
    return {span.name: span for span in trace.data.spans}


@pytest.fixture(scope="module")
def asked(first_run):
    return json.loads(cli("ask", QUESTION, "--group", "public", "--json").stdout)


def test_ask_json_returns_a_trace_with_every_step(asked, settings):
    from mlflow import MlflowClient
    from tasks.tracing import TRACE_EXPERIMENT

    trace_id = asked["trace_id"]
    assert trace_id and trace_id.startswith("tr-")
    trace = MlflowClient().get_trace(trace_id)
    experiment = MlflowClient().get_experiment_by_name(TRACE_EXPERIMENT)
    assert trace.info.experiment_id == experiment.experiment_id
    spans = spans_by_name(trace)
    assert {"answer", "retrieval", "prompt", "generation", "grounding"} <= set(spans)
    root = spans["answer"]
    assert root.parent_id is None and root.inputs["question"] == QUESTION
    assert root.outputs["answer"] == asked["answer"]
    retrieval = spans["retrieval"]
    assert retrieval.span_type == "RETRIEVER" and retrieval.inputs["groups"] == ["public"]
    hits = [doc["id"] for doc in retrieval.outputs]
    assert hits[: len(asked["sources"])] == [s["passage_id"] for s in asked["sources"]]
    assert all(isinstance(doc["metadata"]["score"], float) for doc in retrieval.outputs)
    generation = spans["generation"]
    assert generation.attributes["model_version"] == str(asked["model_version"])
    assert generation.attributes["input_tokens"] > 0
    assert 0 < generation.attributes["output_tokens"] <= generation.attributes["max_new_tokens"]
    grounding = spans["grounding"]
    assert [c["passage_id"] for c in grounding.outputs["citations"]] == [
        c["passage_id"] for c in asked["citations"]
    ]
    assert all(s.parent_id == root.span_id for n, s in spans.items() if n != "answer")


def test_the_query_log_keeps_the_trace_id(asked, settings):
    from tasks.query_log import QueryLog

    log = QueryLog(settings.query_log)
    rows = [r for r in log.read() if r["trace_id"] == asked["trace_id"]]
    log.close()
    assert len(rows) == 1 and rows[0]["caller"] == "cli" and rows[0]["question"] == QUESTION


class CopyingGenerator:
    """Copies the first words of passage 1 and cites it (a reader that always answers)."""

    def answer_many(self, system, questions, contexts, max_new_tokens, raw=False, **_):
        return [" ".join(ctx[0]["text"].split()[:5]) + " [1]" if ctx else "" for ctx in contexts]


def test_a_dead_tracking_server_costs_the_trace_not_the_answer(first_run, settings):
    import mlflow
    from dualengine.api import engine_for

    live = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"http://127.0.0.1:{endpoints.free_port()}")
    try:
        engine = engine_for(settings, CopyingGenerator(), "copy", log_queries=False)
        try:
            answer = engine.ask(QUESTION, ["public"])
        finally:
            engine.close()
    finally:
        mlflow.set_tracking_uri(live)
    assert answer.answered and answer.citations and answer.trace_id is None


def assessments(trace_id):
    from mlflow import MlflowClient

    return {a.name: a for a in MlflowClient().get_trace(trace_id).info.assessments}


def test_feedback_lands_on_the_trace_the_query_log_and_the_golden_set(asked, settings):
    from tasks.golden import GoldenSet
    from tasks.query_log import QueryLog

    trace_id = asked["trace_id"]
    correction = "in the 10th and 11th centuries"
    out = cli("feedback", trace_id, "--bad", "--correction", correction, "--user", "ann", "--json")
    result = json.loads(out.stdout)
    assert result["rating"] == "bad" and result["query_log_rows"] == 1
    found = assessments(trace_id)
    assert found["user_rating"].value is False
    assert found["user_rating"].source.source_type == "HUMAN"
    assert found["user_rating"].source.source_id == "ann"
    assert found["expected_answer"].value == correction
    log = QueryLog(settings.query_log)
    [row] = [r for r in log.read() if r["trace_id"] == trace_id]
    log.close()
    assert (row["feedback"], row["correction"]) == ("bad", correction)
    golden = result["golden"]
    assert golden["status"] == "added"
    [item] = [i for i in GoldenSet(settings.state).items() if i["trace_id"] == trace_id]
    assert item["question"] == QUESTION and item["answer"] == correction
    assert item["groups"] == ["public"] and item["relevant_ids"]
    assert set(item["passage_ids"]) == {s["passage_id"] for s in asked["sources"]}
    again = json.loads(
        cli("feedback", trace_id, "--bad", "--correction", correction, "--json").stdout
    )
    assert again["golden"]["status"] == "duplicate" and again["golden"]["size"] == golden["size"]


def test_feedback_through_the_python_api(asked, settings):
    from dualengine.api import feedback
    from mlflow import MlflowClient

    result = feedback(asked["trace_id"], good=True, user="bob", settings=settings)
    assert result["rating"] == "good" and result["golden"] is None
    trace = MlflowClient().get_trace(asked["trace_id"])
    ratings = [a for a in trace.info.assessments if a.name == "user_rating"]
    assert {(a.source.source_id, a.value) for a in ratings} >= {("bob", True)}


@pytest.mark.parametrize(
    "args",
    [
        ["tr-" + "0" * 32, "--good"],  # a well-formed id MLflow does not know
        ["not-a-trace", "--good"],
        ["{trace}", "--good", "--bad"],
        ["{trace}"],
        ["{trace}", "--good", "--correction", "x"],
    ],
)
def test_wrong_feedback_exits_2_with_a_message(asked, args):
    out = cli("feedback", *[a.format(trace=asked["trace_id"]) for a in args], check=False)
    assert out.returncode == 2, out.stderr
    assert any(
        words in out.stderr
        for words in ("not found", "not an answer's trace id", "exactly one", "goes with --bad")
    ), out.stderr
