"""`dualengine serve`: every flow as a Prefect deployment with schedules, event triggers and
typed parameters, served by this process (or by a process work pool, see the README).

| deployment | schedule | triggers |
|---|---|---|
| monitor/hourly | `schedules.monitor` | — |
| reindex/nightly | `schedules.reindex` | dualengine.knowledge.degraded, dualengine.data.updated |
| retrain/on-drift | — | dualengine.behaviour.degraded (one at a time, cooldown) |
| evaluate/on-promotion | — | dualengine.model.promoted (the promoted version) |
| the rest (dual-engine, finetune, promote, …) | — | — (start them from the Prefect UI) |
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dualengine.settings import Settings
from dualengine.webhook_receiver import PROMOTED
from flows.locks import TRAINING_LIMIT, ensure_limit
from flows.steps.monitor import DATA_UPDATED
from flows.steps.monitor import EVENTS as ENGINE_EVENTS

# the event names and the training limit are defined where they are emitted and occupied
EVENTS = {**ENGINE_EVENTS, "data": DATA_UPDATED, "promoted": PROMOTED}


def deployment_specs(settings: Settings) -> list[tuple[Any, str, dict[str, Any]]]:
    """(flow, deployment name, deployment options) for every flow."""
    from prefect.events import DeploymentEventTrigger

    from flows.dual_engine import dual_engine_flow
    from flows.evaluate import evaluate_flow
    from flows.finetune import finetune_flow, promote_flow, rollback_model_flow
    from flows.monitor import monitor_flow
    from flows.reindex import evaluate_retrieval_flow, reindex_flow, rollback_index_flow
    from flows.retrain import retrain_flow
    from flows.serving import register_hybrid_flow

    schedules = settings.config().schedules
    generator = settings.config().registry.model_name
    profile = {"profile": settings.profile}

    def trigger(name: str, event: str, resource: str, parameters: dict[str, Any] | None = None):
        return DeploymentEventTrigger(
            name=name,
            expect={event},
            match={"prefect.resource.id": resource},
            parameters=parameters,
        )

    specs: list[tuple[Any, str, dict[str, Any]]] = [
        (
            monitor_flow,
            "hourly",
            {
                "cron": schedules.monitor,
                "parameters": profile,
                "tags": ["dualengine", "monitor"],
                "description": "Drift and health signals of both engines; emits repair events.",
            },
        ),
        (
            reindex_flow,
            "nightly",
            {
                "cron": schedules.reindex,
                "triggers": [
                    trigger(
                        "knowledge degraded", EVENTS["knowledge"], "dualengine.engine.knowledge"
                    ),
                    trigger("new data version", EVENTS["data"], "dualengine.data.*"),
                ],
                "tags": ["dualengine", "knowledge"],
                "concurrency_limit": 1,
                "description": "Incremental re-index (nightly, and when knowledge degrades).",
            },
        ),
        (
            retrain_flow,
            "on-drift",
            {
                "triggers": [
                    trigger(
                        "behaviour degraded",
                        EVENTS["behaviour"],
                        "dualengine.engine.behaviour",
                        profile | {"reason": "{{ event.event }} {{ event.id }}"},
                    )
                ],
                "parameters": profile,
                "tags": ["dualengine", "behaviour"],
                "description": "finetune (RAFT data against the live index) → promote.",
            },
        ),
        (
            evaluate_flow,
            "on-promotion",
            {
                "triggers": [
                    trigger(
                        "champion moved",
                        EVENTS["promoted"],
                        f"mlflow.model.{generator}",
                        profile | {"model": "{{ event.payload.version }}"},
                    )
                ],
                "parameters": profile,
                "tags": ["dualengine", "evaluation"],
                "description": "Attribution evaluation of a newly promoted generator version.",
            },
        ),
    ]
    for f, params, tag in (
        (dual_engine_flow, profile, "lifecycle"),
        (finetune_flow, profile, "behaviour"),
        (promote_flow, profile, "behaviour"),
        (rollback_model_flow, profile, "behaviour"),
        (reindex_flow, {}, "knowledge"),
        (rollback_index_flow, {}, "knowledge"),
        (evaluate_retrieval_flow, {}, "knowledge"),
        (register_hybrid_flow, profile, "serving"),
    ):
        specs.append((f, "manual", {"parameters": params, "tags": ["dualengine", tag]}))
    return specs


def build_deployments(settings: Settings) -> list[Any]:
    """RunnerDeployments for every flow (nothing is sent to the server yet)."""
    return [f.to_deployment(name, **options) for f, name, options in deployment_specs(settings)]


POOL_TYPES = ("process", "kubernetes")


def deploy_to_pool(
    settings: Settings,
    pool: str,
    only: list[str] | None = None,
    pool_type: str = "process",
    image: str | None = None,
) -> list[str]:
    """The same deployments on a work pool, for workers started with `prefect worker start
    --pool POOL` on any machine; `only` limits it to these flow names. A process pool runs the
    code of this checkout; a kubernetes pool runs each flow run as a Job from `image`, whose
    code is at the same path (/app in infra/docker/Dockerfile). Creates the pool when missing
    and the training concurrency limit. Returns the deployment ids."""
    import asyncio
    import inspect

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate

    from dualengine.settings import PROJECT_ROOT

    if pool_type not in POOL_TYPES:
        raise ValueError(f"work pool type {pool_type!r}: expected one of {', '.join(POOL_TYPES)}")
    if pool_type == "kubernetes" and not image:
        raise ValueError("a kubernetes work pool needs --image (the dualengine image to run)")

    async def ensure_pool():
        async with get_client() as client:
            try:
                existing = await client.read_work_pool(pool)
            except Exception:  # noqa: BLE001 - ObjectNotFound
                await client.create_work_pool(WorkPoolCreate(name=pool, type=pool_type))
                return
            if existing.type != pool_type:
                raise ValueError(f"work pool {pool!r} exists with type {existing.type!r}")

    asyncio.run(ensure_pool())
    ensure_training_limit()
    # an image that is already built and pushed (infra/docker/Dockerfile): nothing to build here
    from_image = {"image": image, "build": False, "push": False} if image else {}
    ids = []
    for f, name, options in deployment_specs(settings):
        if only and f.name not in only:
            continue
        path = Path(inspect.getfile(f.fn)).resolve().relative_to(PROJECT_ROOT)
        source = f.from_source(str(PROJECT_ROOT), f"{path.as_posix()}:{f.fn.__name__}")
        ids.append(
            str(
                source.deploy(
                    name,
                    work_pool_name=pool,
                    print_next_steps=False,
                    **from_image,
                    **options,
                )
            )
        )
    return ids


def ensure_training_limit() -> None:
    """The global concurrency limit that keeps one training at a time."""
    ensure_limit(TRAINING_LIMIT)


def serve(settings: Settings, webhook: bool = True) -> None:
    """Register every deployment and run their flow runs from this process until stopped."""
    from prefect import serve as prefect_serve

    ensure_training_limit()
    if webhook:
        from dualengine.webhook_receiver import register_webhook, start_receiver

        server = start_receiver(settings)
        host, port = server.server_address[:2]
        register_webhook(settings, f"http://{host}:{port}/mlflow")
    prefect_serve(*build_deployments(settings), limit=4)
