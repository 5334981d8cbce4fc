"""The `retrain` flow: the behaviour engine's repair — fine-tune against the current index,
then let the gate decide. One training at a time; repeated triggers within a cooldown skip."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.runtime import flow_run

from dualengine.settings import Settings
from flows.locks import TRAINING_LIMIT, training_slot

__all__ = ["TRAINING_LIMIT", "recent_retrains", "retrain_flow"]


def recent_retrains(minutes: float) -> list[Any]:
    """Other `retrain` runs started within the last `minutes` that did not fail or crash."""
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterStartTime,
    )

    since = datetime.now(UTC) - timedelta(minutes=minutes)

    async def read():
        async with get_client() as client:
            return await client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=["retrain"])),
                flow_run_filter=FlowRunFilter(start_time=FlowRunFilterStartTime(after_=since)),
            )

    me = flow_run.get_id()
    return [
        r
        for r in asyncio.run(read())
        if str(r.id) != str(me)
        and r.state is not None
        and (r.state.is_completed() or r.state.is_running())
        and "skipped" not in (r.state.message or "")
    ]


@flow(name="retrain", log_prints=True)
def retrain_flow(profile: str | None = None, reason: str = "manual") -> dict[str, Any]:
    """finetune (RAFT data rebuilt against the live index) → promote, under the global
    concurrency limit `dualengine-training`; skipped within `schedules.retrain_cooldown_minutes`
    of another retrain."""
    from flows.finetune import finetune_flow, promote_flow

    settings = Settings.for_profile(profile)
    cooldown = settings.config().schedules.retrain_cooldown_minutes
    others = recent_retrains(cooldown)
    if others:
        message = f"skipped: retrain run {others[0].name} started within {cooldown:g} min"
        create_markdown_artifact(
            key="retrain", markdown=f"## Retrain {message}\n\nReason: {reason}"
        )
        get_run_logger().info(message)
        return {"skipped": True, "reason": message}
    with training_slot():
        tuned = finetune_flow(profile=settings.profile)
        decision = promote_flow(profile=settings.profile, version=tuned["challenger_version"])
    create_markdown_artifact(
        key="retrain",
        markdown=f"## Retrain ({reason})\n\nChallenger v{tuned['challenger_version']} trained "
        f"against `{tuned['index']['collection']}`; gate: "
        f"{'PROMOTED' if decision['promoted'] else 'refused'} — {decision['reason']}",
    )
    return {
        "skipped": False,
        "challenger_version": tuned["challenger_version"],
        "decision": decision,
    }
