"""The default local stack authenticates every service: no credentials or wrong ones → 401/403,
the project's own credentials → 200 (the whole suite runs against this stack)."""

import base64

import httpx
import pytest

http = httpx.Client(timeout=60)

pytestmark = pytest.mark.integration


def _basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def _creds(settings, stack):
    from dualengine import endpoints

    creds = endpoints.client_credentials(settings, stack)
    assert creds.weaviate_api_key and creds.mlflow_password and creds.prefect_auth_string
    return creds


def test_prefect_api_requires_the_auth_string(stack, settings):
    creds = _creds(settings, stack)
    url = stack.prefect_api_url.rstrip("/") + "/flows/filter"
    user, password = creds.prefect_auth_string.split(":", 1)
    assert http.post(url, json={}).status_code == 401
    assert http.post(url, json={}, headers=_basic(user, password + "x")).status_code == 401
    assert http.post(url, json={}, headers={"Authorization": "Bearer x"}).status_code == 401
    assert http.post(url, json={}, headers=_basic(user, password)).status_code == 200


def test_mlflow_requires_basic_auth(stack, settings):
    creds = _creds(settings, stack)
    url = stack.mlflow_tracking_uri.rstrip("/") + "/api/2.0/mlflow/experiments/search"
    body = {"max_results": 1}
    assert http.post(url, json=body).status_code == 401
    wrong = _basic(creds.mlflow_username, creds.mlflow_password + "x")
    assert http.post(url, json=body, headers=wrong).status_code == 401
    assert http.post(url, json=body, headers=_basic("nobody", "x")).status_code == 401
    right = _basic(creds.mlflow_username, creds.mlflow_password)
    assert http.post(url, json=body, headers=right).status_code == 200
    # the registry (aliases decide what `serve-model` runs) is closed as well
    alias = stack.mlflow_tracking_uri.rstrip("/") + "/api/2.0/mlflow/registered-models/alias"
    reply = http.post(alias, json={"name": "dualengine-hybrid", "alias": "champion", "version": 1})
    assert reply.status_code == 401


def test_weaviate_requires_the_api_key(stack, settings):
    creds = _creds(settings, stack)
    url = stack.weaviate_http + "/v1/schema"
    assert http.get(url).status_code == 401
    assert http.get(url, headers={"Authorization": "Bearer wrong-key"}).status_code == 401
    key = {"Authorization": f"Bearer {creds.weaviate_api_key}"}
    assert http.get(url, headers=key).status_code == 200


def test_weaviate_grpc_requires_the_api_key(stack, settings):
    import grpc
    from weaviate.proto.v1 import search_get_pb2, weaviate_pb2_grpc

    creds = _creds(settings, stack)
    request = search_get_pb2.SearchRequest(collection="NoSuchCollection", limit=1)
    with grpc.insecure_channel(f"127.0.0.1:{stack.weaviate_grpc_port}") as channel:
        stub = weaviate_pb2_grpc.WeaviateStub(channel)
        for metadata in ((), (("authorization", "Bearer wrong-key"),)):
            with pytest.raises(grpc.RpcError) as refused:
                stub.Search(request, metadata=metadata, timeout=30)
            assert _auth_refusal(refused.value), refused.value
        with pytest.raises(grpc.RpcError) as answered:  # authenticated: past the door
            stub.Search(
                request,
                metadata=(("authorization", f"Bearer {creds.weaviate_api_key}"),),
                timeout=30,
            )
        assert not _auth_refusal(answered.value), answered.value


def _auth_refusal(error) -> bool:
    """Weaviate answers a missing or wrong key with UNAUTHENTICATED or UNKNOWN + 'unauthorized'."""
    import grpc

    details = (error.details() or "").lower()
    return error.code() == grpc.StatusCode.UNAUTHENTICATED or (
        "unauthorized" in details or "anonymous access" in details
    )
