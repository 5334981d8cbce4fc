"""The knowledge engine against a real Weaviate: build, reuse, alias, access filter."""

import copy
import random

import pytest

from dualengine.models import embedding_model_path
from tasks.embedding import embed_texts
from tasks.indexing import alias_target, build_index, chunk_corpus, collection_count
from tasks.retrieval import hybrid_search

pytestmark = pytest.mark.integration

TOPICS = [
    "volcano lava eruption",
    "violin orchestra concert",
    "football goal striker",
    "bread flour yeast oven",
    "comet orbit telescope",
    "tax return deduction",
]
GROUPS = ["public", "finance", "hr", "legal"]


@pytest.fixture(scope="module")
def corpus():
    rng = random.Random(3)
    docs = []
    for i in range(40):
        topic = TOPICS[i % len(TOPICS)]
        groups = sorted(rng.sample(GROUPS, rng.randint(1, 2)))
        docs.append(
            {
                "id": f"doc-{i:02d}",
                "title": f"{topic.split()[0]} note {i}",
                "text": f"Document {i} is about {topic}. " * rng.randint(3, 40),
                "source": f"test/{i}.txt",
                "updated_at": "2024-05-01T00:00:00Z",
                "groups": groups,
            }
        )
    return docs


@pytest.fixture(scope="module")
def params(settings):
    p = copy.deepcopy(settings.params())
    p["index"] = {"alias": "TestPassages", "collection_prefix": "TestPassages"}
    p["chunking"] = {"max_words": 60, "overlap_words": 10}
    return p


def _ids(client, name):
    return {str(o.uuid) for o in client.collections.get(name).iterator()}


def test_build_then_rebuild_is_idempotent(weaviate, settings, corpus, params):
    model = embedding_model_path(settings)
    first = build_index(weaviate, corpus, "digest-1", "dv-1", model, params)
    assert not first.reused
    assert first.objects == len(chunk_corpus(corpus, params["chunking"])) > len(corpus)
    assert collection_count(weaviate, first.collection) == first.objects
    assert alias_target(weaviate, "TestPassages") == first.collection
    ids = _ids(weaviate, first.collection)
    again = build_index(weaviate, corpus, "digest-1", "dv-1", model, params)
    assert again.reused and again.collection == first.collection
    assert _ids(weaviate, first.collection) == ids


def test_new_version_moves_the_alias(weaviate, settings, corpus, params):
    model = embedding_model_path(settings)
    old = build_index(weaviate, corpus, "digest-1", "dv-1", model, params)
    new = build_index(weaviate, corpus[:-5], "digest-2", "dv-2", model, params)
    assert new.collection != old.collection
    assert alias_target(weaviate, "TestPassages") == new.collection
    assert weaviate.collections.exists(old.collection)  # kept for rollback


def test_access_filter_over_random_users_and_queries(weaviate, settings, corpus, params):
    model = embedding_model_path(settings)
    build_index(weaviate, corpus, "digest-1", "dv-1", model, params)
    rng = random.Random(11)
    queries = [
        f"{rng.choice(TOPICS)} {rng.choice(['facts', 'notes', 'details'])}" for _ in range(30)
    ]
    vectors = embed_texts(model, queries, show=False)
    seen = 0
    for query, vector in zip(queries, vectors, strict=True):
        user = rng.sample(GROUPS, rng.randint(1, 2))
        hits = hybrid_search(weaviate, "TestPassages", query, vector.tolist(), 10, 0.5, user)
        seen += len(hits)
        assert all(set(h.groups) & set(user) for h in hits), (user, [h.groups for h in hits])
    assert seen > 0


def test_hybrid_search_finds_the_topic(weaviate, settings, corpus, params):
    model = embedding_model_path(settings)
    build_index(weaviate, corpus, "digest-1", "dv-1", model, params)
    vector = embed_texts(model, ["telescope comet"], show=False)[0].tolist()
    hits = hybrid_search(weaviate, "TestPassages", "telescope comet", vector, 3, 0.5, GROUPS)
    assert hits and "comet" in hits[0].text
    assert hits[0].score >= hits[-1].score
