"""kill -9 Weaviate in the middle of a full and of an incremental re-index; restart; the rerun
converges: the live index holds exactly the planned chunks (no duplicate, orphan or missing
one), and a build that did not finish is never a version."""

from __future__ import annotations

import copy
import hashlib
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pytest

from dualengine.models import embedding_model_path
from dualengine.weaviate_client import weaviate_client
from tasks import index_store, index_versions, indexing
from tasks.chunking import chunking_identity, tokenizer_json
from tasks.knowledge import EmbeddingSpec, reindex

pytestmark = [pytest.mark.integration, pytest.mark.faults]

ALIAS = "FaultPassages"
TOPICS = ["volcano lava", "violin concert", "football goal", "bread yeast", "comet orbit"]


def corpus(n: int = 40) -> list[dict]:
    return [
        {
            "id": f"doc-{i:02d}",
            "title": f"note {i}",
            "text": " ".join(
                f"Document {i} sentence {j} is about {TOPICS[(i + j) % 5]}." for j in range(40)
            ),
            "source": f"fault/{i}.txt",
            "updated_at": "2024-05-01T00:00:00Z",
            "groups": ["public"],
        }
        for i in range(n)
    ]


@dataclass
class KillingEmbedder(EmbeddingSpec):
    """Cheap deterministic vectors (what is under test is Weaviate, not the embedder); on call
    number `kill_on` it kills Weaviate -9 first, so the upsert dies halfway."""

    kill_on: int = 0
    victim: object = None
    calls: list[int] = field(default_factory=list)

    def embed(self, texts):
        self.calls.append(len(texts))
        if self.kill_on and len(self.calls) == self.kill_on:
            self.victim.kill()
        out = np.zeros((len(texts), 16), dtype="float32")
        for row, text in enumerate(texts):
            digest = hashlib.sha256(text.encode()).digest()
            out[row] = np.frombuffer(digest[:16], dtype=np.uint8) / 255.0 + 0.01
        return out


@pytest.fixture
def params(settings):
    p = copy.deepcopy(settings.params())
    p["index"] |= {"alias": ALIAS, "collection_prefix": ALIAS, "keep_versions": 2}
    p["chunking"] = {"max_tokens": 32, "overlap_tokens": 4}
    return p


def spec(settings, **kw) -> KillingEmbedder:
    return KillingEmbedder(model=embedding_model_path(settings), identity="fault-hash16", **kw)


def planned(docs, settings, params) -> dict[str, str]:
    """{object id: passage id} the index must hold for `docs`."""
    tokenizer = tokenizer_json(embedding_model_path(settings))
    chunks = indexing.chunk_corpus(docs, tokenizer, chunking_identity(params["chunking"]))
    return {c.object_id: c.passage_id for c in chunks}


def assert_converged(client, docs, settings, params) -> str:
    """Live collection == plan: 0 duplicates, 0 orphans, 0 missing chunks; returns it."""
    live = index_versions.alias_target(client, ALIAS)
    want = planned(docs, settings, params)
    rows = [
        (str(o.uuid), o.properties["passage_id"])
        for o in client.collections.get(live).iterator(return_properties=["passage_id"])
    ]
    duplicates = [p for p, n in Counter(p for _, p in rows).items() if n > 1]
    have = {u for u, _ in rows}
    assert duplicates == []
    assert have - set(want) == set(), "orphans"
    assert set(want) - have == set(), "missing chunks"
    assert index_store.collection_count(client, live) == len(want)
    return live


def test_kill_mid_full_rebuild_then_rerun_converges(own_weaviate, settings, params):
    docs = corpus()
    assert len(planned(docs, settings, params)) > 300  # two embedding blocks at least
    with weaviate_client(own_weaviate.settings) as client:
        first = reindex(client, docs, "v1", spec(settings), params, full=True)
        assert first.mode == "rebuilt"
    edited = copy.deepcopy(docs)
    edited[0]["text"] += " A new closing sentence."
    killer = spec(settings, kill_on=2, victim=own_weaviate)
    with pytest.raises(Exception), weaviate_client(own_weaviate.settings) as client:  # noqa: B017
        reindex(client, edited, "v2", killer, params, full=True)
    assert len(killer.calls) >= 2 and not own_weaviate.healthy()

    own_weaviate.start()
    with weaviate_client(own_weaviate.settings) as client:
        leftovers = [
            n
            for n in client.collections.list_all(simple=True)
            if n.startswith(ALIAS + "_") and n != first.collection
        ]
        assert leftovers, "the kill left no partial build to clean up"
        assert not indexing.is_complete(index_versions.read_manifest(client, leftovers[0]))
        versions = [v["collection"] for v in index_versions.list_versions(client, ALIAS)]
        assert versions == [first.collection]  # the partial build is not a version
        with pytest.raises(LookupError):
            index_versions.rollback(client, ALIAS, ALIAS)
        assert index_versions.alias_target(client, ALIAS) == first.collection
        assert_converged(client, docs, settings, params)  # the live index was never touched

        again = reindex(client, edited, "v2", spec(settings), params, full=True)
        assert again.mode == "rebuilt"
        live = assert_converged(client, edited, settings, params)
        names = sorted(n for n in client.collections.list_all(simple=True) if n.startswith(ALIAS))
        assert names == sorted([first.collection, live])  # the partial build is gone


def test_kill_mid_incremental_then_rerun_converges(own_weaviate, settings, params, monkeypatch):
    docs = corpus()
    with weaviate_client(own_weaviate.settings) as client:
        reindex(client, docs, "v1", spec(settings), params)
    edited = copy.deepcopy(docs)
    changed = [d["id"] for d in edited[:20]]
    for d in edited[:20]:  # changed documents: new chunks upserted, old ones deleted after
        d["text"] = d["text"].replace("sentence", "line")
    edited.pop(20)
    edited.append({**docs[1], "id": "doc-new"})

    # 1. killed during the upsert of changed documents (second embedding block)
    killer = spec(settings, kill_on=2, victim=own_weaviate)
    with pytest.raises(Exception), weaviate_client(own_weaviate.settings) as client:  # noqa: B017
        reindex(client, edited, "v2", killer, params)
    assert len(killer.calls) >= 2
    own_weaviate.start()

    # 2. killed after every upsert, before any stale object is deleted (half-updated docs)
    real_delete = index_store.delete_objects

    def kill_then_delete(collection, object_ids, batch=500):
        own_weaviate.kill()
        return real_delete(collection, object_ids, batch)

    monkeypatch.setattr(index_store, "delete_objects", kill_then_delete)
    with pytest.raises(Exception), weaviate_client(own_weaviate.settings) as client:  # noqa: B017
        reindex(client, edited, "v2", spec(settings), params)
    monkeypatch.setattr(index_store, "delete_objects", real_delete)
    own_weaviate.start()
    with weaviate_client(own_weaviate.settings) as client:
        mixed = index_store.live_documents(
            client.collections.get(index_versions.alias_target(client, ALIAS))
        )
        assert sorted(d for d, (h, _) in mixed.items() if h == indexing.MIXED) == changed

        # 3. the rerun converges, and a further rerun touches nothing
        result = reindex(client, edited, "v2", spec(settings), params)
        assert result.mode == "incremental" and result.changed_documents == changed
        assert_converged(client, edited, settings, params)
        calm = reindex(client, edited, "v2", spec(settings), params)
        assert (calm.upserted_objects, calm.deleted_objects) == (0, 0)
