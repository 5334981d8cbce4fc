"""MLflow for teams: the session's MLflow runs on the project's own PostgreSQL with artifacts
on the S3 server (`services up --mlflow-backend postgres`). `make test-team-stack` (and `make
test`, after the main suite) runs this file with DUALENGINE_MLFLOW_BACKEND=postgres, together
with the lifecycle and serving tests, so registry, aliases, the webhook and the served model all
go through that stack. What lands where is read from PostgreSQL and from the bucket through the
S3 API, not from MLflow's word."""

import os
import stat
import time
from datetime import UTC, datetime
from urllib.parse import urlparse

import httpx
import pytest

from dualengine import endpoints, object_store, postgres_server

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.slow]

REQUIRED = "DUALENGINE_REQUIRE_TEAM_STACK"


def _check_backend() -> None:
    """Decided at collection, before any session fixture starts a stack: without the
    PostgreSQL backend the module is skipped with its reason, or fails where it is required."""
    from dualengine.settings import get_settings

    if get_settings().mlflow_backend == "postgres":
        return
    why = "runs with DUALENGINE_MLFLOW_BACKEND=postgres (`make test-team-stack`)"
    if os.environ.get(REQUIRED):  # CI: a missing team stack is a failure, never a skip
        pytest.fail(f"{REQUIRED} is set but this session's MLflow is not on PostgreSQL: {why}")
    pytest.skip(why, allow_module_level=True)


_check_backend()


@pytest.fixture(scope="module")
def state(stack, settings):
    return endpoints.read_state(settings)


def sql(settings, state, query, *args, password=None):
    import psycopg2

    conn = psycopg2.connect(
        host="127.0.0.1",
        port=state["postgres"]["port"],
        user=postgres_server.USER,
        password=password or postgres_server.ensure_cluster(settings).password,
        dbname="mlflow",
        connect_timeout=10,
    )
    try:
        with conn.cursor() as cursor:
            cursor.execute(query, args)
            return cursor.fetchall()
    finally:
        conn.close()


def test_registry_and_aliases_live_in_postgres(state, first_run, settings):
    name = settings.params()["registry"]["model_name"]
    champion = first_run["decision"]["champion_after"]
    rows = sql(
        settings,
        state,
        "SELECT alias, version FROM registered_model_aliases WHERE name = %s",
        name,
    )
    assert ("champion", int(champion)) in rows
    versions = sql(settings, state, "SELECT version FROM model_versions WHERE name = %s", name)
    assert (int(champion),) in versions
    hybrid = settings.params()["registry"]["hybrid_model_name"]
    assert sql(
        settings,
        state,
        "SELECT count(*) FROM registered_model_aliases WHERE name = %s AND alias = 'champion'",
        hybrid,
    ) == [(1,)]
    assert state["mlflow"]["store"].startswith("postgresql://127.0.0.1:")
    assert "password" not in state["mlflow"]["store"]


def test_postgres_refuses_a_wrong_password_and_its_secrets_are_private(state, settings):
    import psycopg2

    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        sql(settings, state, "SELECT 1", password="not-the-password")
    secrets = settings.state / "secrets"
    for name in (
        "postgres-password",
        "s3-access-key-id",
        "s3-secret-access-key",
        "seaweedfs-filer-read-jwt-key",
        "seaweedfs-tls/node.key",
    ):
        mode = stat.S_IMODE((secrets / name).stat().st_mode)
        assert mode == 0o600, f"{secrets / name}: mode {mode:o}"
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o700


def s3_key_prefix(artifact_uri: str) -> str:
    """Where MLflow's proxied artifact URI lands in the bucket (MLFLOW_ARTIFACTS_DESTINATION is
    s3://<bucket>/artifacts)."""
    parsed = urlparse(artifact_uri)
    assert parsed.scheme == "mlflow-artifacts", artifact_uri
    return "artifacts/" + parsed.path.strip("/") + "/"


def bucket_keys(s3) -> dict[str, int]:
    return {
        o["Key"]: o["Size"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=object_store.BUCKET)
        for o in page.get("Contents", [])
    }


def test_model_artifacts_are_objects_in_the_s3_bucket(state, first_run, settings):
    import yaml

    from mlflow import MlflowClient

    client = MlflowClient()
    s3 = object_store.s3_client(state["s3"]["url"], object_store.credentials(settings))
    keys = bucket_keys(s3)
    registry = settings.params()["registry"]
    generator = client.get_model_version_download_uri(
        registry["model_name"], first_run["decision"]["champion_after"]
    )
    prefix = s3_key_prefix(generator)
    adapter = {k: size for k, size in keys.items() if k.startswith(prefix)}
    assert any(k.endswith(".safetensors") and size > 0 for k, size in adapter.items()), (
        f"no adapter weights under s3://{object_store.BUCKET}/{prefix}: {sorted(keys)[:20]}"
    )
    served = client.get_model_version_by_alias(registry["hybrid_model_name"], "champion")
    prefix = s3_key_prefix(
        client.get_model_version_download_uri(registry["hybrid_model_name"], served.version)
    )
    mlmodel = s3.get_object(Bucket=object_store.BUCKET, Key=prefix + "MLmodel")["Body"].read()
    assert "python_function" in yaml.safe_load(mlmodel)["flavors"]


def test_s3_refuses_unknown_keys_and_unsigned_requests(state, settings):
    from botocore.exceptions import ClientError

    url = state["s3"]["url"]
    stranger = object_store.s3_client(
        url, {"AWS_ACCESS_KEY_ID": "nobody", "AWS_SECRET_ACCESS_KEY": "wrong-secret"}
    )
    with pytest.raises(ClientError) as refused:
        stranger.list_objects_v2(Bucket=object_store.BUCKET)
    assert refused.value.response["Error"]["Code"] in {"InvalidAccessKeyId", "AccessDenied"}
    real = object_store.credentials(settings)
    forged = object_store.s3_client(url, real | {"AWS_SECRET_ACCESS_KEY": "forged"})
    with pytest.raises(ClientError):
        forged.list_objects_v2(Bucket=object_store.BUCKET)
    assert httpx.get(f"{url}/{object_store.BUCKET}/", timeout=10).status_code == 403
    assert httpx.put(f"{url}/{object_store.BUCKET}/x", content=b"x", timeout=10).status_code == 403


def test_seaweedfs_inner_ports_refuse_unsigned_http_and_grpc_without_a_client_certificate(
    state, settings
):
    """Behind the S3 gateway: filer and volume HTTP want a JWT, every gRPC port mutual TLS."""
    import ssl

    from dualengine import seaweedfs_security

    base = state["s3"]["port"] - object_store.s3_port(0)  # PORTS layout of server_command
    master, volume_grpc, filer, filer_grpc, s3_grpc = base, base + 3, base + 4, base + 5, base + 7
    assert httpx.get(f"http://127.0.0.1:{filer}/buckets/{object_store.BUCKET}/").status_code == 401
    put = httpx.post(
        f"http://127.0.0.1:{filer}/buckets/{object_store.BUCKET}/planted.txt",
        files={"file": ("planted.txt", b"x")},
    )
    assert put.status_code == 401
    assigned = httpx.get(f"http://127.0.0.1:{master}/dir/assign", timeout=10).json()
    write = httpx.post(
        f"http://{assigned['url']}/{assigned['fid']}", files={"file": ("x", b"x")}, timeout=10
    )
    assert write.status_code == 401
    tls = seaweedfs_security.ensure_grpc_certificates(settings)
    for port in (master + 1, volume_grpc, filer_grpc, s3_grpc):
        anonymous = ssl.create_default_context(cafile=str(tls / "ca.crt"))
        with pytest.raises(ssl.SSLError, match="CERTIFICATE_REQUIRED"):
            _tls_exchange(port, anonymous)
        member = ssl.create_default_context(cafile=str(tls / "ca.crt"))
        member.load_cert_chain(tls / "node.crt", tls / "node.key")
        assert _tls_exchange(port, member) == "h2"


def _tls_exchange(port: int, context) -> str | None:
    """Open a TLS connection offering HTTP/2 (as gRPC does); the protocol the server chose."""
    import socket

    context.set_alpn_protocols(["h2"])
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as conn,
    ):
        conn.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        conn.recv(64)  # TLS 1.3: a refused client certificate shows up at the first read
        return conn.selected_alpn_protocol()


def test_alias_webhook_is_delivered_through_the_team_stack(state, first_run, settings):
    import prefect.events  # noqa: F401 - imported here, not first in the receiver's thread

    from dualengine.webhook_receiver import PROMOTED, register_webhook, start_receiver
    from mlflow import MlflowClient

    server = start_receiver(settings, endpoints.free_port())
    try:
        host, port = server.server_address[:2]
        register_webhook(settings, f"http://{host}:{port}/mlflow")
        name = settings.params()["registry"]["model_name"]
        version = first_run["decision"]["champion_after"]
        start = datetime.now(UTC)
        # MLflow caches the webhooks of an event for MLFLOW_WEBHOOK_CACHE_TTL (60 s): an alias
        # set just before (the run's promotion) may hide the new webhook until then, so the
        # alias is set again every 15 s until the delivery arrives
        deadline = time.monotonic() + 150
        found = []
        while not found:
            assert time.monotonic() < deadline, "no promoted event from the webhook"
            MlflowClient().set_registered_model_alias(name, "champion", version)
            for _ in range(15):
                if found := _events(PROMOTED, start):
                    break
                time.sleep(1)
        assert found[0].payload["version"] == str(version)
    finally:
        server.shutdown()


def _events(name, since):
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventNameFilter, EventOccurredFilter

    async def read():
        async with get_client() as client:
            page = await client.read_events(
                EventFilter(
                    event=EventNameFilter(name=[name]), occurred=EventOccurredFilter(since=since)
                ),
                limit=50,
            )
            return page.events

    return asyncio.run(read())
