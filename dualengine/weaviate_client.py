"""A Weaviate client for the configured endpoint (local node or a real cluster)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from dualengine.services import resolve_endpoints
from dualengine.settings import Settings

if TYPE_CHECKING:
    import weaviate


def connect(settings: Settings) -> weaviate.WeaviateClient:
    """Connect over HTTP + gRPC; an API key is used when DUALENGINE_WEAVIATE_API_KEY is set."""
    import weaviate
    from weaviate.classes.init import AdditionalConfig, Auth, Timeout

    endpoints = resolve_endpoints(settings)
    host, port = endpoints.weaviate_host_port
    secure = endpoints.weaviate_http.startswith("https")
    return weaviate.connect_to_custom(
        http_host=host,
        http_port=port,
        http_secure=secure,
        grpc_host=host,
        grpc_port=endpoints.weaviate_grpc_port,
        grpc_secure=secure,
        auth_credentials=Auth.api_key(settings.weaviate_api_key)
        if settings.weaviate_api_key
        else None,
        additional_config=AdditionalConfig(timeout=Timeout(init=10, query=60, insert=120)),
    )


@contextmanager
def weaviate_client(settings: Settings) -> Iterator[weaviate.WeaviateClient]:
    client = connect(settings)
    try:
        yield client
    finally:
        client.close()
