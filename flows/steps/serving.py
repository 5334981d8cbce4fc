"""Prefect task: package the hybrid system (pinned generator + index alias) as a pyfunc version."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from dualengine.settings import Settings

STEP = {"cache_policy": NO_CACHE, "persist_result": False}


@task(name="register-hybrid-model", **STEP)
def register_hybrid_model(
    settings: Settings, generator: str = "champion", only_if_changed: bool = True
) -> dict[str, Any]:
    """Register a `dualengine-hybrid` version pinning the generator (alias or version; the base
    model while no champion exists) and make it the served `champion`. With only_if_changed,
    nothing is registered when the served version already pins that generator."""
    from dualengine.hybrid_model import register_hybrid
    from dualengine.resolve import index_alias, resolve_generator
    from tasks import registry

    config = settings.config()
    gen_name, hybrid_name = config.registry.model_name, config.registry.hybrid_model_name
    choice = resolve_generator(settings, generator)
    pinned, adapter, base = choice.version, choice.adapter, choice.base
    served = registry.version_by_alias(hybrid_name, registry.CHAMPION)
    if only_if_changed and served and (served.tags or {}).get("generator_version") == pinned:
        get_run_logger().info("hybrid v%s already serves generator %s", served.version, pinned)
        return {
            "hybrid_version": str(served.version),
            "generator_version": pinned,
            "new": False,
        }
    hybrid = register_hybrid(settings, pinned, adapter, base)
    create_markdown_artifact(
        key="hybrid-model",
        markdown=f"## `{hybrid_name}` v{hybrid} is now `champion`\n\n"
        f"Pins generator `{gen_name}` {pinned} and index alias "
        f"`{index_alias(settings)}`.\n\nServe it: `dualengine serve-model` "
        f"(= `mlflow models serve -m models:/{hybrid_name}@champion --env-manager local`).",
        description="Servable hybrid model",
    )
    return {"hybrid_version": hybrid, "generator_version": pinned, "new": True}
