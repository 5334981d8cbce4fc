"""One re-index and one training at a time: Prefect global concurrency limits, taken by the
flows, the deployments and the CLI alike. A second run waits a bounded time, then is refused."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from contextvars import ContextVar

REINDEX_LIMIT = "dualengine-reindex"
TRAINING_LIMIT = "dualengine-training"
LEASE_SECONDS = 300.0  # a holder killed with -9 frees the slot when its lease runs out
# a flow run queued behind another training waits its turn (workers: one at a time, in order)
TRAINING_WAIT_SECONDS = 6 * 3600.0

# the limits this flow run (or the CLI / parent flow that started it) already holds
_held: ContextVar[frozenset[str]] = ContextVar("dualengine_held_limits", default=frozenset())


class Busy(RuntimeError):
    """Another run holds the limit and did not let go within the wait."""


def ensure_limit(name: str, limit: int = 1) -> None:
    """Create the global concurrency limit, or set it back to `limit` slots and active: an
    absent or deactivated limit would let every caller through."""
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import (
        GlobalConcurrencyLimitCreate,
        GlobalConcurrencyLimitUpdate,
    )
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    async def upsert() -> None:
        async with get_client() as client:
            try:
                found = await client.read_global_concurrency_limit_by_name(name)
            except ObjectNotFound:
                with contextlib.suppress(ObjectAlreadyExists):  # another caller was first
                    await client.create_global_concurrency_limit(
                        GlobalConcurrencyLimitCreate(name=name, limit=limit)
                    )
                return
            if not found.active or found.limit != limit:
                await client.update_global_concurrency_limit(
                    name, GlobalConcurrencyLimitUpdate(limit=limit, active=True)
                )

    asyncio.run(upsert())


@contextmanager
def exclusive(name: str, wait_seconds: float, what: str) -> Iterator[None]:
    """Hold one slot of `name` (limit 1) for the body; Busy after `wait_seconds` of waiting.
    Re-entrant: a flow started under the slot (CLI → finetune, retrain → finetune) goes on."""
    from prefect.concurrency.sync import concurrency

    if name in _held.get():
        yield
        return
    ensure_limit(name)
    stack = ExitStack()
    try:
        stack.enter_context(
            concurrency(
                name,
                occupy=1,
                timeout_seconds=max(1.0, float(wait_seconds)),
                strict=True,
                lease_duration=LEASE_SECONDS,
                raise_on_lease_renewal_failure=False,  # a Prefect hiccup never kills a run
            )
        )
    except TimeoutError as exc:
        raise Busy(
            f"refused: another {what} holds the Prefect concurrency limit '{name}' and did "
            f"not finish within {wait_seconds:g} s; nothing was changed. Try again later "
            "(or wait longer with --wait)"
        ) from exc
    token = _held.set(_held.get() | {name})
    try:
        with stack:
            yield
    finally:
        _held.reset(token)


def training_slot(wait_seconds: float = TRAINING_WAIT_SECONDS) -> contextlib.AbstractContextManager:
    """One training at a time on every worker and CLI: the `dualengine-training` limit."""
    return exclusive(TRAINING_LIMIT, wait_seconds, "training")
