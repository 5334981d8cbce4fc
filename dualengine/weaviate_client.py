"""A Weaviate client for the configured endpoint (local node or a real cluster)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from dualengine.endpoints import client_credentials, resolve_endpoints
from dualengine.settings import Settings

if TYPE_CHECKING:
    import weaviate


def connect(settings: Settings) -> weaviate.WeaviateClient:
    """Connect over HTTP + gRPC with the API key (DUALENGINE_WEAVIATE_API_KEY, else the key
    `services up` generated for the local node)."""
    import weaviate
    from weaviate.classes.init import AdditionalConfig, Auth, Timeout

    endpoints = resolve_endpoints(settings)
    host, port = endpoints.weaviate_host_port
    secure = endpoints.weaviate_http.startswith("https")
    api_key = client_credentials(settings, endpoints).weaviate_api_key
    client = weaviate.connect_to_custom(
        http_host=host,
        http_port=port,
        http_secure=secure,
        grpc_host=host,
        grpc_port=endpoints.weaviate_grpc_port,
        grpc_secure=secure,
        auth_credentials=Auth.api_key(api_key) if api_key else None,
        additional_config=AdditionalConfig(timeout=Timeout(init=10, query=60, insert=120)),
    )
    return with_consistency(client, settings.consistency)


def with_consistency(client: weaviate.WeaviateClient, level: str) -> weaviate.WeaviateClient:
    """Every collection handle of this client reads and writes at `level` (ONE, QUORUM, ALL):
    on a replicated cluster QUORUM keeps answering with one node down."""
    from weaviate.classes.config import ConsistencyLevel

    consistency = ConsistencyLevel[level]
    collections = client.collections
    for method in ("get", "use"):
        original = getattr(collections, method, None)
        if original is None:
            continue

        def handle(*args, _original=original, **kwargs):
            return _original(*args, **kwargs).with_consistency_level(consistency)

        setattr(collections, method, handle)
    return client


@contextmanager
def weaviate_client(settings: Settings) -> Iterator[weaviate.WeaviateClient]:
    client = connect(settings)
    try:
        yield client
    finally:
        client.close()
