"""The hybrid answer on the session's servers: the registered pyfunc loads by alias and answers,
`mlflow models serve` answers HTTP with citations, the access filter holds through serving,
answers reach the query log, and `dualengine evaluate` fills every attribution cell."""

import json
import os
import signal
import subprocess
import time

import httpx
import pytest
from e2e_helpers import cli, flow_runs_and_artifacts

from dualengine import endpoints
from dualengine.resolve import index_alias
from tasks.grounding import content_words, supports

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

QUESTION = "When did the Normans settle in Normandy?"


def passage_text(weaviate, alias, passage_id):
    from weaviate.classes.query import Filter

    found = weaviate.collections.get(alias).query.fetch_objects(
        filters=Filter.by_property("passage_id").equal(passage_id), limit=1
    )
    assert found.objects, f"cited passage {passage_id} is not in the live index"
    return found.objects[0].properties["text"]


def check_answer(answer, weaviate, alias, champion):
    """Sources and citations point at real passages; quotes are verbatim; support is real."""
    assert answer["model_version"] == champion
    assert answer["sources"] and answer["sources"][0]["title"] == "Normans"
    assert {"retrieval", "generation", "total"} <= set(answer["timings_ms"])
    for source in answer["sources"]:
        passage_text(weaviate, alias, source["passage_id"])
    for citation in answer["citations"]:
        text = passage_text(weaviate, alias, citation["passage_id"])
        assert citation["quote"] and citation["quote"] in text
        if citation["supports_answer"]:
            shared = set(content_words(answer["answer"])) & set(content_words(text))
            assert supports(text, answer["answer"]) or shared
        else:
            assert citation["cited_by_model"]


@pytest.fixture(scope="module")
def hybrid(first_run, settings):
    from tasks import registry

    name = settings.params()["registry"]["hybrid_model_name"]
    served = registry.version_by_alias(name, "champion")
    assert served is not None, "the dual-engine run registers a servable hybrid version"
    assert served.tags["generator_version"] == first_run["decision"]["champion_after"]
    assert first_run["hybrid"]["hybrid_version"] == str(served.version)
    return name, served


def test_pyfunc_loads_by_alias_and_answers_with_citations(hybrid, first_run, settings, weaviate):
    import pandas as pd

    import mlflow

    name, served = hybrid
    model = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    alias = index_alias(settings)
    answers = model.predict(
        pd.DataFrame(
            [
                {"question": QUESTION, "groups": ["public"]},
                {"question": QUESTION, "groups": ["nobody"]},
            ]
        )
    )
    check_answer(answers[0], weaviate, alias, first_run["decision"]["champion_after"])
    hidden = answers[1]
    assert not hidden["answered"] and hidden["sources"] == hidden["citations"] == []


class ExtractiveGenerator:
    """A stand-in for a perfect reader: copies the opening words of passage 2 and cites it."""

    def answer_many(self, system, questions, contexts, max_new_tokens, raw=False, **_):
        return [  # closed-book without passages
            " ".join(ctx[1]["text"].split()[:6]) + " [2]" if ctx else "1066 [1]" for ctx in contexts
        ]


def test_every_citation_points_at_a_real_passage_with_supporting_text(first_run, settings):
    from dualengine.api import engine_for

    engine = engine_for(settings, ExtractiveGenerator(), "extractive", log_queries=False)
    try:
        answer = engine.ask(QUESTION, ["public"], conflict_check=True)
        assert answer.answered and answer.citations
        cited = answer.citations[0]
        assert cited.cited_by_model and cited.supports_answer
        assert cited.passage_id == answer.sources[1]["passage_id"]
        alias = index_alias(settings)
        for citation in answer.citations:
            text = passage_text(engine.client, alias, citation.passage_id)
            assert supports(text, answer.answer) and citation.quote in text
        assert answer.closed_book_answer == "1066"
        assert answer.faithfulness == 1.0 and "closed_book" in answer.timings_ms
    finally:
        engine.close()


def test_concurrent_questions_share_batches_and_answer_as_alone(first_run, settings):
    """With SmolLM2 as the reader: the tiny champion's greedy choices are near-ties that
    float32 rounding of a padded batch can flip, SmolLM2's are not."""
    from dualengine.api import engine_for
    from dualengine.models import ensure_smollm2
    from tasks.generation import load_generator

    questions = [
        QUESTION,
        "Who was the duke in the battle of Hastings?",
        "What is the Rhine's longest tributary?",
        "Where did the Normans come from?",
        "When was the University of Warsaw founded?",
    ]
    reader = load_generator(str(ensure_smollm2(settings)), None, settings.context_length())
    engine = engine_for(settings, reader, "base", log_queries=False)
    try:
        alone = [engine.ask(q, ["public"]).as_dict() for q in questions]
        before = len(engine.batch_sizes)
        engine.batcher.max_wait = 2.0  # the frame's retrievals finish within this, even loaded
        requests = [(q, ["public"], None) for q in questions]
        together = [a.as_dict() for a in engine.ask_many(requests)]
        formed = engine.batch_sizes[before:]
    finally:
        engine.close()
    keys = ("question", "answer", "answered", "sources")
    assert [{k: a[k] for k in keys} for a in together] == [{k: a[k] for k in keys} for a in alone]
    assert max(formed) > 1 and sum(formed) <= len(questions)


def test_answers_reach_the_query_log(hybrid, settings):
    from tasks.query_log import QueryLog

    log = QueryLog(settings.query_log)
    rows = [r for r in log.read() if r["caller"] == "pyfunc"]
    log.close()
    assert len(rows) >= 2
    public = next(r for r in rows if r["groups"] == ["public"])
    assert public["question"] == QUESTION and len(public["embedding"]) == 384
    assert public["retrieved_ids"] and public["latency_ms"] > 0
    assert (
        public["index_collection"]
        and public["model_version"] == hybrid[1].tags["generator_version"]
    )
    assert next(r for r in rows if r["groups"] == ["nobody"])["retrieved_ids"] == []


def server_log(settings) -> str:
    """The server's log without progress-bar lines (its errors)."""
    text = (settings.state / "serve-test.log").read_text()
    return "\n".join(line for line in text.splitlines() if "it/s]" not in line)[-4000:]


def test_mlflow_models_serve_answers_http_with_the_access_filter(
    hybrid, first_run, settings, weaviate
):
    from dualengine.hybrid_model import serve_command, serve_env

    port = endpoints.free_port()
    log = open(settings.state / "serve-test.log", "w")  # noqa: SIM115 - closed below
    server = subprocess.Popen(
        serve_command(settings, port),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env=serve_env(),
    )
    try:
        deadline = time.time() + 300
        while time.time() < deadline:
            assert server.poll() is None, server_log(settings)
            try:
                if httpx.get(f"http://127.0.0.1:{port}/ping", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(1)
        body = {
            "dataframe_records": [
                {"question": QUESTION, "groups": ["public"]},
                {"question": QUESTION, "groups": ["nobody"]},
            ]
        }
        reply = httpx.post(f"http://127.0.0.1:{port}/invocations", json=body, timeout=120)
        assert reply.status_code == 200, reply.text
        answers = reply.json()["predictions"]
        alias = index_alias(settings)
        check_answer(answers[0], weaviate, alias, first_run["decision"]["champion_after"])
        assert answers[1]["sources"] == [] and not answers[1]["answered"]
        bad = httpx.post(
            f"http://127.0.0.1:{port}/invocations",
            json={"dataframe_records": [{"groups": ["public"]}]},
            timeout=60,
        )
        assert bad.status_code == 400
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=60)
        log.close()


def test_evaluate_fills_every_attribution_cell(first_run):
    from mlflow import MlflowClient
    from tasks.attribution import CONTEXTS, GAP_METRICS, METRICS, MODELS

    result = json.loads(cli("evaluate", "--questions", "6", "--json").stdout)
    (section,) = result["sets"]
    assert section["set"] == "xquad"
    cells = {(r["model"], r["context"]): r for r in section["rows"]}
    assert set(cells) == {(m, c) for m in MODELS for c in CONTEXTS}
    for row in cells.values():
        assert row["n"] == 6
        for metric in METRICS:
            assert row[f"{metric}_low"] <= row[metric] <= row[f"{metric}_high"]
    assert cells[("base", "oracle")]["recall"] == 1.0
    assert cells[("base", "closed_book")]["recall"] == 0.0
    for gap in ("ft_rag_minus_rag_only", "ft_rag_minus_ft_only"):
        for metric in GAP_METRICS:
            d = section["gaps"][gap][metric]
            assert d["low"] <= d["mean"] <= d["high"]
    assert section["diagnosis"] and 0.0 <= section["conflict_rate"] <= 1.0
    assert result["meta"]["finetuned_version"] == first_run["decision"]["champion_after"]
    run = MlflowClient().get_run(result["run_id"])
    assert run.data.tags["data_version"] == first_run["data_version"]
    assert "xquad.finetuned.retrieved.f1" in run.data.metrics
    artifacts = {a.path for a in MlflowClient().list_artifacts(result["run_id"])}
    assert {"attribution_report.html", "attribution_xquad.json"} <= artifacts
    with open(result["html"], encoding="utf-8") as report:
        assert "data:image/png;base64," in report.read()
    runs, found = flow_runs_and_artifacts("evaluate", ["attribution-xquad", "attribution-report"])
    assert any(r.state.is_completed() for r in runs)
    assert {"attribution-xquad", "attribution-report"} <= {a.key for a in found}
