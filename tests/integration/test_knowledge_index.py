"""The knowledge engine against a real Weaviate: incremental re-index, blue-green rebuild with
its gate, rollback, pruning, queries during a swap, and the access filter."""

import copy
import random
import threading

import pytest

from dualengine.models import embedding_model_path
from dualengine.resolve import AccessGroupsError
from tasks import index_versions, indexing
from tasks.chunking import chunking_identity, tokenizer_json
from tasks.embedding import embed_texts
from tasks.knowledge import EmbeddingSpec, reindex
from tasks.retrieval import hybrid_search

pytestmark = pytest.mark.integration

ALIAS = "KnowledgeTest"
TOPICS = [
    "volcano lava eruption magma",
    "violin orchestra concert symphony",
    "football goal striker penalty",
    "bread flour yeast oven",
    "comet orbit telescope astronomy",
    "tax return deduction refund",
]
GROUPS = ["public", "finance", "hr", "legal"]


def make_corpus(n=30, seed=3):
    rng = random.Random(seed)
    docs = []
    for i in range(n):
        topic = TOPICS[i % len(TOPICS)]
        docs.append(
            {
                "id": f"doc-{i:02d}",
                "title": f"{topic.split()[0]} note {i}",
                "text": " ".join(
                    f"Document {i} sentence {j} is about {topic}."
                    for j in range(rng.randint(2, 30))
                ),
                "source": f"test/{i}.txt",
                "updated_at": "2024-05-01T00:00:00Z",
                "groups": sorted(rng.sample(GROUPS, rng.randint(1, 2))),
            }
        )
    return docs


def eval_items(docs):
    return [
        {
            "id": f"q{d['id']}",
            "question": f"Which document {d['id'][-2:]} is about {d['title'].split()[0]}?",
            "answer": "x",
            "relevant_ids": [d["id"]],
        }
        for d in docs[:12]
    ]


@pytest.fixture(scope="module")
def params(settings):
    p = copy.deepcopy(settings.params())
    p["index"] |= {
        "alias": ALIAS,
        "collection_prefix": ALIAS,
        "keep_versions": 2,
        "gate_margin": 0.05,
    }
    p["chunking"] = {"max_tokens": 48, "overlap_tokens": 8}
    return p


@pytest.fixture(scope="module")
def spec(settings):
    return EmbeddingSpec(model=embedding_model_path(settings), identity="test-minilm")


@pytest.fixture
def fresh(weaviate):
    for name in weaviate.collections.list_all(simple=True):
        if name.startswith(ALIAS + "_"):
            if weaviate.alias.exists(alias_name=ALIAS):
                weaviate.alias.delete(alias_name=ALIAS)
            weaviate.collections.delete(name)
    return weaviate


def object_ids(client, name):
    return {str(o.uuid) for o in client.collections.get(name).iterator()}


def expected_ids(docs, spec, params):
    tokenizer = tokenizer_json(spec.model)
    chunking = chunking_identity(params["chunking"])
    return {c.object_id for c in indexing.chunk_corpus(docs, tokenizer, chunking)}


def test_incremental_reindex_changes_exactly_the_affected_objects(fresh, spec, params):
    docs = make_corpus()
    first = reindex(fresh, docs, "v1", spec, params)
    assert first.mode == "rebuilt" and first.objects > len(docs)
    live = first.live_collection
    assert object_ids(fresh, live) == expected_ids(docs, spec, params)

    again = reindex(fresh, docs, "v1", spec, params)
    assert again.mode == "incremental" and again.collection == live
    assert (again.upserted_objects, again.deleted_objects) == (0, 0)
    assert object_ids(fresh, live) == expected_ids(docs, spec, params)

    edited = copy.deepcopy(docs)
    edited[1]["text"] += " A new closing sentence about a volcano."
    edited[2]["groups"] = ["legal"]
    removed = edited.pop(5)
    edited.append({**docs[0], "id": "doc-new", "text": "A brand new note on comets."})
    before = object_ids(fresh, live)
    tokenizer = tokenizer_json(spec.model)
    chunking = chunking_identity(params["chunking"])
    old_chunks = {d["id"]: indexing.chunk_document(d, tokenizer, chunking) for d in docs}
    new_chunks = {d["id"]: indexing.chunk_document(d, tokenizer, chunking) for d in edited}

    result = reindex(fresh, edited, "v2", spec, params)
    assert result.mode == "incremental"
    assert result.new_documents == ["doc-new"]
    assert result.changed_documents == ["doc-01", "doc-02"]
    assert result.removed_documents == [removed["id"]]
    touched = ["doc-01", "doc-02", "doc-new"]
    assert result.upserted_objects == sum(len(new_chunks[i]) for i in touched)
    stale = {c.object_id for i in ["doc-01", "doc-02", removed["id"]] for c in old_chunks[i]}
    stale -= {c.object_id for i in touched for c in new_chunks[i]}
    assert result.deleted_objects == len(stale)
    after = object_ids(fresh, live)
    assert after == expected_ids(edited, spec, params)
    assert before - after == stale
    assert index_versions.read_manifest(fresh, live)["data_version"] == "v2"


def test_blue_green_rebuild_keeps_answering_swaps_and_rolls_back(fresh, spec, params):
    docs = make_corpus()
    first = reindex(fresh, docs, "v1", spec, params, eval_sets={"t": eval_items(docs)})
    assert first.gate["passed"]
    errors, answered, stop = [], [0], threading.Event()
    vector = embed_texts(spec.model, ["comet telescope"], show=False)[0].tolist()

    def query_forever():
        while not stop.is_set():
            try:
                hits = hybrid_search(fresh, ALIAS, "comet telescope", vector, 5, 0.5, GROUPS)
                assert hits
                answered[0] += 1
            except Exception as exc:  # any failure is what the test looks for
                errors.append(repr(exc))

    thread = threading.Thread(target=query_forever)
    thread.start()
    try:
        edited = copy.deepcopy(docs)
        edited[0]["text"] += " Updated."
        second = reindex(
            fresh, edited, "v2", spec, params, full=True, eval_sets={"t": eval_items(edited)}
        )
    finally:
        stop.set()
        thread.join()
    assert errors == [] and answered[0] > 0
    assert second.mode == "rebuilt" and second.gate["passed"]
    assert second.collection != first.collection
    assert index_versions.alias_target(fresh, ALIAS) == second.collection

    assert index_versions.rollback(fresh, ALIAS, ALIAS) == (second.collection, first.collection)
    assert index_versions.alias_target(fresh, ALIAS) == first.collection
    with pytest.raises(LookupError):
        index_versions.rollback(fresh, ALIAS, ALIAS)


def test_gate_refuses_a_worse_index_and_old_versions_are_pruned(fresh, spec, params):
    docs = make_corpus()
    items = eval_items(docs)
    first = reindex(fresh, docs, "v1", spec, params, full=True, eval_sets={"t": items})
    damaged = [d for d in docs if d["id"] not in {i["relevant_ids"][0] for i in items[:8]}]
    refused = reindex(fresh, damaged, "v2", spec, params, full=True, eval_sets={"t": items})
    assert refused.mode == "refused" and not refused.gate["passed"]
    assert refused.gate["candidate"] < refused.gate["live"] - params["index"]["gate_margin"]
    assert index_versions.alias_target(fresh, ALIAS) == first.collection

    extra = copy.deepcopy(docs)
    extra[3]["text"] += " More."
    third = reindex(fresh, extra, "v3", spec, params, full=True, eval_sets={"t": items})
    assert third.gate["passed"] and third.pruned  # keep_versions = 2
    names = [v["collection"] for v in index_versions.list_versions(fresh, ALIAS)]
    assert len(names) == 2 and third.collection in names


def test_access_filter_over_random_users_and_queries(fresh, spec, params):
    docs = make_corpus()
    reindex(fresh, docs, "v1", spec, params)
    rng = random.Random(11)
    queries = [f"{rng.choice(TOPICS)} {rng.choice(['facts', 'notes'])}" for _ in range(40)]
    vectors = embed_texts(spec.model, queries, show=False)
    seen = 0
    for query, vector in zip(queries, vectors, strict=True):
        user = rng.sample(GROUPS, rng.randint(1, 2))
        alpha = rng.choice([0.0, 0.5, 1.0])
        hits = hybrid_search(fresh, ALIAS, query, vector.tolist(), 10, alpha, user)
        seen += len(hits)
        assert all(set(h.groups) & set(user) for h in hits), (user, [h.groups for h in hits])
    assert seen > 0
    assert hybrid_search(fresh, ALIAS, "comet", vectors[0].tolist(), 5, 0.5, ["nobody"]) == []
    for unfiltered in (None, [], "public", ["*"]):  # the lowest layer never drops the filter
        with pytest.raises(AccessGroupsError):
            hybrid_search(fresh, ALIAS, "comet", vectors[0].tolist(), 5, 0.5, unfiltered)
