"""A three-node Weaviate cluster on loopback (`services up --weaviate-nodes 3`): collections
are replicated 3 ways; kill -9 one node while queries run at QUORUM and an incremental re-index
writes → no query fails, the re-index completes, and the restarted node catches up (object
counts equal on every node, read from each node's own status)."""

import os
import signal
import threading
import time

import pytest

from dualengine import endpoints, services
from dualengine.models import embedding_model_path
from dualengine.weaviate_client import connect
from tasks import index_store
from tasks.embedding import embed_texts
from tasks.knowledge import EmbeddingSpec, reindex
from tasks.retrieval import hybrid_search

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NODES = ("weaviate", "weaviate-node2", "weaviate-node3")
ALIAS = "ClusterTest"


@pytest.fixture(scope="module")
def cluster(settings, tmp_path_factory):
    """Three nodes of its own (own state folder and ports), stopped at the end."""
    own = settings.model_copy(
        update={
            "state_dir": tmp_path_factory.mktemp("cluster-state"),
            "weaviate_nodes": 3,
            "weaviate_port": endpoints.free_port(),
            "weaviate_grpc_port": endpoints.free_port(),
            "weaviate_consistency": None,  # the cluster default: QUORUM
        }
    )
    try:
        services.up(own, timeout=240, progress=lambda m: None, only=NODES)
        yield own
    finally:
        services.down(own, progress=lambda m: None)


@pytest.fixture(scope="module")
def params(settings):
    import copy

    p = copy.deepcopy(settings.params())
    p["index"] |= {"alias": ALIAS, "collection_prefix": ALIAS, "keep_versions": 2}
    p["chunking"] = {"max_tokens": 48, "overlap_tokens": 8}
    return p


def corpus(n, version):
    topics = ["volcano lava magma", "violin orchestra", "bread yeast oven", "comet telescope"]
    return [
        {
            "id": f"doc-{i:03d}",
            "title": f"note {i}",
            "text": " ".join(
                f"Document {i} v{version if i % 3 == 0 else 1} line {j}: {topics[i % 4]}."
                for j in range(6)
            ),
            "source": f"test/{i}.txt",
            "updated_at": "2024-05-01T00:00:00Z",
            "groups": ["public"],
        }
        for i in range(n)
    ]


def per_node_counts(client, collection):
    """Objects of `collection` on each node, as each node reports its own shards."""
    nodes = client.cluster.nodes(collection=collection, output="verbose")
    return {n.name: sum(s.object_count for s in n.shards or []) for n in nodes}


def test_cluster_answers_at_quorum_through_a_node_loss(cluster, params):
    spec = EmbeddingSpec(model=embedding_model_path(cluster), identity="test-minilm")
    client = connect(cluster)
    try:
        assert [n.status for n in client.cluster.nodes()] == ["HEALTHY"] * 3
        first = reindex(client, corpus(60, 1), "v1", spec, params)
        live = first.collection
        config = client.collections.get(live).config.get()
        assert config.replication_config.factor == 3

        vectors = embed_texts(spec.model, ["lava and magma", "an orchestra", "yeast bread"])
        stop, done, failures = threading.Event(), [0], []

        def query_loop():
            reader = connect(cluster)  # its own connection, QUORUM like every handle
            try:
                deadline = time.monotonic() + 600
                while not stop.is_set() and time.monotonic() < deadline:
                    vector = vectors[done[0] % len(vectors)]
                    try:
                        hits = hybrid_search(
                            reader, ALIAS, "lava", list(vector), 5, 0.5, ["public"]
                        )
                        assert hits, "no hits"
                    except Exception as exc:  # noqa: BLE001 - every failure is counted
                        failures.append(repr(exc))
                        time.sleep(0.1)
                    done[0] += 1
            finally:
                reader.close()

        thread = threading.Thread(target=query_loop, daemon=True)
        thread.start()
        time.sleep(2)
        victim = endpoints.read_state(cluster)["weaviate-node3"]["pid"]
        os.kill(victim, signal.SIGKILL)
        before_kill_queries = done[0]

        changed = reindex(client, corpus(70, 2), "v2", spec, params)  # one node down
        assert changed.mode == "incremental"
        assert changed.new_documents and changed.changed_documents
        assert changed.collection == live

        services.up(cluster, timeout=240, progress=lambda m: None, only=NODES)  # node 3 back
        time.sleep(3)
        stop.set()
        thread.join(timeout=60)
        assert not failures, f"{len(failures)} of {done[0]} queries failed: {failures[:3]}"
        assert done[0] > before_kill_queries + 5, "queries did not run while the node was down"

        expected = index_store.collection_count(client, live)
        deadline = time.monotonic() + 180
        while (counts := per_node_counts(client, live)) != dict.fromkeys(counts, expected):
            assert time.monotonic() < deadline, f"node counts {counts}, expected {expected}"
            time.sleep(3)
        assert len(counts) == 3
    finally:
        client.close()
