"""Default deny, as a property over the four doors: random callers (no groups, empty, a string,
"*", unknown, mixed, wrong types) ask random questions about random documents with random
groups, through the Python API, the `dualengine ask` CLI, the pyfunc loaded from MLflow and
`mlflow models serve` over HTTP. Every source and citation must come from a document that
shares a group with the caller's effective groups (computed here independently: no groups →
`public`; a non-empty list of plain names → those names; anything else → refused), and every
malformed request must be refused. More than 1,000 requests in all (800 through the API, whose
extractive stand-in generator is cheap and always cites; about 100 each through the pyfunc and
HTTP, which generate with the tiny random-init model; 12 CLI runs, each loading the model)."""

from __future__ import annotations

import copy
import json
import os
import random
import re
import signal
import subprocess
import time

import httpx
import pytest
import yaml

from dualengine import endpoints

pytestmark = pytest.mark.integration

ALIAS = "AccessProperty"
GROUPS = ["public", "finance", "hr", "legal"]
TOPICS = [
    "volcano lava eruption magma",
    "violin orchestra concert symphony",
    "football goal striker penalty",
    "bread flour yeast oven",
    "comet orbit telescope astronomy",
    "tax return deduction refund",
    "salary bonus payroll review",
    "contract clause liability court",
]
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]*")
MISSING = object()


def make_docs(rng: random.Random, n: int = 32) -> list[dict]:
    docs = []
    for i in range(n):
        topic = TOPICS[i % len(TOPICS)]
        docs.append(
            {
                "id": f"acc-{i:02d}",
                "title": f"{topic.split()[0]} record {i}",
                "text": " ".join(
                    f"Record {i} line {j} covers {topic}." for j in range(rng.randint(2, 8))
                ),
                "source": f"property/{i}.txt",
                "updated_at": "2024-05-01T00:00:00Z",
                "groups": sorted(rng.sample(GROUPS, rng.randint(1, 2))),
            }
        )
    return docs


def random_caller(rng: random.Random, typed: bool = True):
    """A request's `groups` as a caller might send it (MISSING: the field is absent)."""
    valid = [*GROUPS, "nobody", "Finance"]
    shapes = [
        lambda: MISSING,
        lambda: rng.sample(valid, rng.randint(1, 3)),
        lambda: rng.sample(valid, rng.randint(1, 2)),
        lambda: [rng.choice(GROUPS), rng.choice(["*", "", "a,b", " hr", "%"])],
        lambda: rng.choice(["*", "fin*", "public,finance", "", "hr hr"]),  # a name or a bad one
    ]
    if typed:
        shapes += [
            lambda: None,
            lambda: [],
            lambda: rng.choice(GROUPS),  # a bare string
            lambda: [rng.choice(GROUPS), 7],
            lambda: {"groups": ["public"]},
        ]
    return rng.choice(shapes)()


def expected_view(requested) -> set[str] | None:
    """The oracle: the caller's effective groups, or None for a refused request."""
    if requested is MISSING or requested is None:
        return {"public"}
    if not isinstance(requested, list) or not requested:
        return None
    if not all(isinstance(g, str) and NAME.fullmatch(g) for g in requested):
        return None
    return set(requested)


def random_question(rng: random.Random) -> str:
    words = rng.choice(TOPICS).split()
    return f"What does record {rng.randint(0, 31)} say about {' and '.join(rng.sample(words, 2))}?"


class Tally:
    """Checks each answer against the documents' true groups and counts what was seen."""

    def __init__(self, docs):
        self.groups = {d["id"]: set(d["groups"]) for d in docs}
        self.requests = self.n_refused = self.sources = self.citations = 0
        self.per_door: dict[str, int] = {}

    def answered(self, door, requested, answer) -> None:
        self._count(door)
        view = expected_view(requested)
        assert view is not None, (door, requested, "should have been refused")
        assert set(answer["groups"]) == view, (door, requested, answer["groups"])
        for kind in ("sources", "citations"):
            for passage in answer[kind]:
                doc = passage["passage_id"].split("#", 1)[0]
                assert self.groups[doc] & view, (door, requested, kind, passage, self.groups[doc])
        self.sources += len(answer["sources"])
        self.citations += len(answer["citations"])

    def refused(self, door, requested) -> None:
        self._count(door)
        assert expected_view(requested) is None, (door, requested, "was refused")
        self.n_refused += 1

    def _count(self, door):
        self.requests += 1
        self.per_door[door] = self.per_door.get(door, 0) + 1


@pytest.fixture(scope="module")
def world(settings, weaviate, tmp_path_factory):
    """The random documents indexed under their own alias, a params file that points the
    engine at them, and a hybrid version registered from it (tiny base model, no adapter)."""
    from dualengine.hybrid_model import register_hybrid
    from dualengine.models import embedding_model_path
    from dualengine.settings import Settings
    from tasks.knowledge import EmbeddingSpec, reindex

    params = copy.deepcopy(settings.params())
    params["index"] |= {"alias": ALIAS, "collection_prefix": ALIAS, "keep_versions": 1}
    params["chunking"] = {"max_tokens": 48, "overlap_tokens": 8}
    params["registry"] |= {
        "model_name": "access-property-generator",  # no versions: the base model answers
        "hybrid_model_name": "access-property-hybrid",
    }
    params["answer"] |= {"log_queries": False, "min_similarity": 0.0}
    params["retrieval"] |= {"default_groups": ["public"], "anonymous_groups": ["public"]}
    path = tmp_path_factory.mktemp("access") / "params.yaml"
    path.write_text(yaml.safe_dump(params, allow_unicode=True))
    local = Settings(params_file=path)
    docs = make_docs(random.Random(2024))
    spec = EmbeddingSpec(model=embedding_model_path(local), identity="access-minilm")
    reindex(weaviate, docs, "access-v1", spec, params, full=True)
    version = register_hybrid(local, "base", None, set_champion=False)
    return local, docs, version, path


@pytest.fixture(scope="module")
def server(world):
    """`mlflow models serve` for the registered version, started early (it boots slowly)."""
    from dualengine.hybrid_model import serve_command, serve_env

    local, _, version, _ = world
    port = endpoints.free_port()
    log_path = local.state / "access-serve.log"
    log = open(log_path, "w")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        serve_command(local, port, ref=version),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env=serve_env(),
    )
    try:
        yield process, port, log_path
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=60)
        log.close()


@pytest.fixture(scope="module")
def tally(world):
    tally = Tally(world[1])
    yield tally
    print(
        f"access property: {tally.requests} requests {tally.per_door}, "
        f"{tally.n_refused} refused, {tally.sources} sources, {tally.citations} citations"
    )


class ExtractiveGenerator:
    """Copies the opening words of passage 1 and cites it (so answers carry citations)."""

    def answer_many(self, system, questions, contexts, max_new_tokens, raw=False, **_):
        return [" ".join(ctx[0]["text"].split()[:6]) + " [1]" if ctx else "" for ctx in contexts]


def test_python_api_door(world, server, tally):
    from dualengine.api import engine_for
    from dualengine.resolve import AccessGroupsError

    local = world[0]
    rng = random.Random(1)
    engine = engine_for(local, ExtractiveGenerator(), "extractive", log_queries=False)
    try:
        for _ in range(800):
            requested = random_caller(rng)
            args = () if requested is MISSING else (requested,)
            try:
                answer = engine.ask(random_question(rng), *args).as_dict()
            except AccessGroupsError:
                tally.refused("api", requested)
                continue
            tally.answered("api", requested, answer)
    finally:
        engine.close()
    assert tally.citations > 0 and tally.sources > 0


def test_pyfunc_door(world, server, tally):
    import pandas as pd
    from mlflow.exceptions import MlflowException

    import mlflow
    from dualengine.hybrid_model import model_uri

    local, _, version, _ = world
    model = mlflow.pyfunc.load_model(model_uri(local, version))
    rng = random.Random(2)
    good, bad = [], []
    while len(good) < 80:
        requested = random_caller(rng)
        (good if expected_view(requested) is not None else bad).append(requested)
    records = [
        {"question": random_question(rng)} | ({} if g is MISSING else {"groups": g}) for g in good
    ]
    for requested, answer in zip(good, model.predict(pd.DataFrame(records)), strict=True):
        tally.answered("pyfunc", requested, answer)
    for requested in bad[:20]:
        with pytest.raises(MlflowException) as raised:
            model.predict(pd.DataFrame([{"question": random_question(rng), "groups": requested}]))
        assert raised.value.get_http_status_code() == 400
        tally.refused("pyfunc", requested)


def test_http_door(world, server, tally):
    process, port, log_path = server
    deadline = time.time() + 420
    while time.time() < deadline:
        assert process.poll() is None, log_path.read_text()[-3000:]
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ping", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(1)
    url = f"http://127.0.0.1:{port}/invocations"
    rng = random.Random(3)
    for _ in range(4):  # 4 batches of 20 well-formed records
        batch = []
        while len(batch) < 20:
            requested = random_caller(rng)
            if expected_view(requested) is not None:
                batch.append(requested)
        records = [
            {"question": random_question(rng)} | ({} if g is MISSING else {"groups": g})
            for g in batch
        ]
        reply = httpx.post(url, json={"dataframe_records": records}, timeout=300)
        assert reply.status_code == 200, reply.text[:2000]
        for requested, answer in zip(batch, reply.json()["predictions"], strict=True):
            tally.answered("http", requested, answer)
    sent = 0
    while sent < 24:  # malformed callers, one per request: each is a 400
        requested = random_caller(rng)
        if expected_view(requested) is not None:
            continue
        record = {"question": random_question(rng), "groups": requested}
        reply = httpx.post(url, json={"dataframe_records": [record]}, timeout=120)
        assert reply.status_code == 400, (requested, reply.status_code, reply.text[:500])
        tally.refused("http", requested)
        sent += 1
    assert process.poll() is None  # the server stayed up


def test_cli_door(world, tally, monkeypatch):
    from typer.testing import CliRunner

    from flows.cli import app

    monkeypatch.setenv("DUALENGINE_PARAMS_FILE", str(world[3]))
    rng = random.Random(4)
    runner = CliRunner()
    for _ in range(12):
        requested = random_caller(rng, typed=False)
        if isinstance(requested, str):
            requested = [requested]  # the CLI takes names one --group at a time
        options = [] if requested is MISSING else [a for g in requested for a in ("-g", g)]
        result = runner.invoke(app, ["ask", random_question(rng), "--json", *options])
        if expected_view(requested) is None:
            assert result.exit_code == 2, (requested, result.output[-2000:])
            tally.refused("cli", requested)
            continue
        assert result.exit_code == 0, (requested, result.output[-2000:])
        tally.answered("cli", requested, json.loads(result.stdout))


def test_more_than_a_thousand_requests_through_all_four_doors(tally):
    assert set(tally.per_door) == {"api", "pyfunc", "http", "cli"}
    assert tally.requests >= 1000 and tally.n_refused > 0 and tally.sources > 0
