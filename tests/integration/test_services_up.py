"""The session's real services answer their health checks and `dualengine services status`."""

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration


def test_status_json_reports_all_three_healthy(stack):
    out = subprocess.run(
        [sys.executable, "-m", "flows", "services", "status", "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    rows = {row["name"]: row for row in json.loads(out.stdout)}
    assert set(rows) == {"prefect", "mlflow", "weaviate"}
    assert all(row["healthy"] and row["managed"] and row["pid"] for row in rows.values())
    assert all("127.0.0.1" in row["url"] for row in rows.values())


def test_up_is_idempotent(stack, settings):
    from dualengine import endpoints, services

    before = endpoints.read_state(settings)
    messages: list[str] = []
    services.up(settings, progress=messages.append)
    assert all("already running" in m for m in messages)
    assert endpoints.read_state(settings) == before
