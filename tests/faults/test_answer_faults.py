"""Answering without Prefect, and the served hybrid model under a bounded burst of malformed and
concurrent requests (real `mlflow models serve` of the registered pyfunc)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from dualengine import endpoints

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.faults]

QUESTION = "What did the Normans' Viking ancestors raid before settling in Normandy?"


def test_ask_answers_with_prefect_down(first_run, settings):
    dead = f"http://127.0.0.1:{endpoints.free_port()}/api"  # nothing listens there
    env = dict(os.environ, PREFECT_API_URL=dead)
    out = subprocess.run(
        [sys.executable, "-m", "flows", "ask", QUESTION, "--group", "public", "--json"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout)
    assert result["sources"] and result["index_collection"]  # retrieved from the live index
    # a command that does need Prefect still says so (exit 2, naming it)
    refused = subprocess.run(
        [sys.executable, "-m", "flows", "reindex", "--no-evaluate"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=300,
    )
    assert refused.returncode == 2 and "prefect" in refused.stderr


MALFORMED = [
    (b"not json at all", "application/json"),
    (b"{", "application/json"),
    (b"[]", "application/json"),
    (b"{}", "application/json"),
    (b'{"dataframe_records": [{"groups": ["public"]}]}', "application/json"),
    (b'{"dataframe_records": [{"question": 7, "groups": ["public"]}]}', "application/json"),
    (b'{"dataframe_records": [{"question": "q", "groups": 5}]}', "application/json"),
    (b'{"dataframe_records": "question"}', "application/json"),
    (b'{"inputs": {"nothing": 1}}', "application/json"),
    (b'{"dataframe_split": {"columns": ["question"]}}', "application/json"),
    (b"\xff\xfe\x00 binary", "application/json"),
    (b"question,groups\n", "text/plain"),
]


def test_served_model_stays_up_under_a_burst_of_bad_and_concurrent_requests(
    first_run, settings, tmp_path
):
    from dualengine.hybrid_model import serve_command, serve_env

    port = endpoints.free_port()
    log = open(tmp_path / "serve.log", "w")  # noqa: SIM115 - closed below
    server = subprocess.Popen(
        serve_command(settings, port),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env=serve_env(),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 300
        while time.time() < deadline:
            assert server.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            try:
                if httpx.get(f"{url}/ping", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(1)
        valid = json.dumps(
            {"dataframe_records": [{"question": QUESTION, "groups": ["public"]}]}
        ).encode()
        burst = [(body, kind, False) for body, kind in MALFORMED * 3]
        burst += [(valid, "application/json", True)] * 4

        def send(item):
            body, kind, good = item
            reply = httpx.post(
                f"{url}/invocations", content=body, headers={"Content-Type": kind}, timeout=300
            )
            return good, body, reply.status_code, reply.text

        with ThreadPoolExecutor(max_workers=8) as pool:
            replies = list(pool.map(send, burst))
        wrong = [
            (body[:60], status, text[:200])
            for good, body, status, text in replies
            if (good and status != 200) or (not good and not 400 <= status < 500)
        ]
        assert wrong == []
        answers = [json.loads(t)["predictions"][0] for good, _, _, t in replies if good]
        assert all(a["sources"] for a in answers)
        assert server.poll() is None
        assert httpx.get(f"{url}/ping", timeout=10).status_code == 200
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=60)
        log.close()
