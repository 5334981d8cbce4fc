"""The `register-hybrid` flow: package the hybrid system as a servable MLflow pyfunc version."""

from __future__ import annotations

from typing import Any

from prefect import flow

from dualengine.settings import Settings
from flows.steps import serving as serving_steps


@flow(name="register-hybrid", log_prints=True)
def register_hybrid_flow(
    profile: str | None = None, generator: str = "champion", force: bool = False
) -> dict[str, Any]:
    """Register a `dualengine-hybrid` version pinning a generator version (default: champion)
    and the index alias, and make it the served `champion`."""
    settings = Settings.for_profile(profile)
    return serving_steps.register_hybrid_model(settings, generator, only_if_changed=not force)
