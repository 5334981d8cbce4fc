"""Two re-index (or training) runs at once: the second waits for the first, or is refused after
its bounded wait with exit 6 and nothing written. Real Prefect global concurrency limits."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from flows.locks import REINDEX_LIMIT, TRAINING_LIMIT, Busy, ensure_limit, exclusive

pytestmark = [pytest.mark.integration, pytest.mark.faults]


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "flows", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )


def deactivate(name: str) -> None:
    """What an operator might do in the UI: switch the limit off (or widen it)."""
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitUpdate

    ensure_limit(name)

    async def update():
        async with get_client() as client:
            await client.update_global_concurrency_limit(
                name, GlobalConcurrencyLimitUpdate(limit=5, active=False)
            )
            found = await client.read_global_concurrency_limit_by_name(name)
            assert (found.limit, found.active) == (5, False)

    asyncio.run(update())


def test_a_second_holder_waits_for_the_first(stack):
    deactivate(REINDEX_LIMIT)  # the lock must hold anyway
    events: list[tuple[str, float]] = []
    holding = threading.Event()

    def first():
        with exclusive(REINDEX_LIMIT, 30, "re-index"):
            events.append(("first in", time.monotonic()))
            holding.set()
            time.sleep(8)
            events.append(("first out", time.monotonic()))

    thread = threading.Thread(target=first)
    thread.start()
    assert holding.wait(60)
    with pytest.raises(Busy, match=REINDEX_LIMIT), exclusive(REINDEX_LIMIT, 1, "re-index"):
        events.append(("intruder in", time.monotonic()))  # a short wait is refused ...
    with exclusive(REINDEX_LIMIT, 60, "re-index"):  # ... a long one gets in after the first
        events.append(("second in", time.monotonic()))
    thread.join()
    names = [e for e, _ in events]
    assert names == ["first in", "first out", "second in"]


def test_cli_reindex_and_finetune_are_refused_while_another_runs(stack, weaviate, tmp_path):
    corpus = tmp_path / "one.jsonl"
    corpus.write_text(
        '{"id": "x1", "title": "t", "text": "Locks keep runs apart.", "source": "s", '
        '"updated_at": "2024-01-01", "groups": ["public"]}\n'
    )
    before = sorted(weaviate.collections.list_all(simple=True))
    with exclusive(REINDEX_LIMIT, 30, "test"):
        started = time.monotonic()
        out = cli("reindex", "--corpus", str(corpus), "--no-evaluate", "--wait", "2")
    assert out.returncode == 6, out.stderr[-3000:]
    assert "dualengine-reindex" in out.stderr and "nothing was changed" in out.stderr
    assert time.monotonic() - started < 300
    assert sorted(weaviate.collections.list_all(simple=True)) == before

    with exclusive(TRAINING_LIMIT, 30, "test"):
        out = cli("finetune", "--profile", "tiny", "--wait", "2")
    assert out.returncode == 6, out.stderr[-3000:]
    assert "dualengine-training" in out.stderr
