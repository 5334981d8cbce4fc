"""MLflow for teams: the session's MLflow runs on the project's own PostgreSQL with artifacts
on the S3 server (`services up --mlflow-backend postgres`). `make test-team-stack` runs this
file with DUALENGINE_MLFLOW_BACKEND=postgres, together with the lifecycle and serving tests, so
registry, aliases, the webhook and the served model all go through that stack."""

import time
from datetime import UTC, datetime

import pytest

from dualengine import endpoints, object_store, postgres_server

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module")
def team_stack(stack, settings):
    if settings.mlflow_backend != "postgres":
        pytest.skip("runs with DUALENGINE_MLFLOW_BACKEND=postgres (`make test-team-stack`)")
    return endpoints.read_state(settings)


def sql(settings, state, query, *args):
    import psycopg2

    cluster = postgres_server.ensure_cluster(settings)
    conn = psycopg2.connect(
        host="127.0.0.1",
        port=state["postgres"]["port"],
        user=postgres_server.USER,
        password=cluster.password,
        dbname="mlflow",
    )
    try:
        with conn.cursor() as cursor:
            cursor.execute(query, args)
            return cursor.fetchall()
    finally:
        conn.close()


def test_registry_and_aliases_live_in_postgres(team_stack, first_run, settings):
    name = settings.params()["registry"]["model_name"]
    champion = first_run["decision"]["champion_after"]
    rows = sql(
        settings,
        team_stack,
        "SELECT alias, version FROM registered_model_aliases WHERE name = %s",
        name,
    )
    assert ("champion", int(champion)) in rows
    assert sql(settings, team_stack, "SELECT count(*) FROM model_versions")[0][0] >= 1
    assert team_stack["mlflow"]["store"].startswith("postgresql://127.0.0.1:")


def test_artifacts_are_objects_in_s3_and_credentials_are_required(team_stack, first_run, settings):
    from botocore.exceptions import ClientError

    from mlflow import MlflowClient

    name = settings.params()["registry"]["model_name"]
    version = MlflowClient().get_model_version(name, first_run["decision"]["champion_after"])
    import boto3

    creds = object_store.credentials(settings)
    s3 = boto3.client(
        "s3",
        endpoint_url=team_stack["s3"]["url"],
        region_name="us-east-1",
        aws_access_key_id=creds["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=creds["AWS_SECRET_ACCESS_KEY"],
    )
    keys = [
        o["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=object_store.BUCKET)
        for o in page.get("Contents", [])
    ]
    assert any(version.run_id in k for k in keys), f"no object of run {version.run_id} in S3"
    assert any(k.endswith("MLmodel") for k in keys)
    anonymous = boto3.client(
        "s3",
        endpoint_url=team_stack["s3"]["url"],
        region_name="us-east-1",
        aws_access_key_id="nobody",
        aws_secret_access_key="wrong-secret",
    )
    with pytest.raises(ClientError):
        anonymous.list_objects_v2(Bucket=object_store.BUCKET)


def test_alias_webhook_is_delivered_through_the_team_stack(team_stack, first_run, settings):
    from dualengine.webhook_receiver import PROMOTED, register_webhook, start_receiver
    from mlflow import MlflowClient

    server = start_receiver(settings, endpoints.free_port())
    try:
        host, port = server.server_address[:2]
        register_webhook(settings, f"http://{host}:{port}/mlflow")
        name = settings.params()["registry"]["model_name"]
        version = first_run["decision"]["champion_after"]
        start = datetime.now(UTC)
        MlflowClient().set_registered_model_alias(name, "champion", version)
        deadline = time.monotonic() + 120
        while not (found := _events(PROMOTED, start)):
            assert time.monotonic() < deadline, "no promoted event from the webhook"
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
