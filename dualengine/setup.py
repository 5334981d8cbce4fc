"""`dualengine setup`: make sure the Weaviate binary and the models are on this machine."""

from __future__ import annotations

import time
from collections.abc import Callable

from dualengine import models, object_store, postgres_server, weaviate_server
from dualengine.settings import Settings


def _step(name: str, action: Callable[[], object], say: Callable[[str], None]) -> bool:
    started = time.perf_counter()
    try:
        where = action()
    except Exception as exc:  # every failure is reported with its fix, then setup goes on
        say(f"[red]✗ {name}: {exc}[/red]")
        return False
    say(f"✓ {name}: {where} ({time.perf_counter() - started:.1f} s)")
    return True


def run_setup(settings: Settings, skip_weaviate: bool = False, say=print) -> bool:
    """Idempotent: a second run only checks the caches and takes seconds."""
    results = []
    if settings.weaviate_url:
        say(f"✓ weaviate: external endpoint {settings.weaviate_url}, nothing to install")
    elif not skip_weaviate:
        results.append(
            _step("weaviate server binary", lambda: weaviate_server.ensure_binary(settings), say)
        )
    if settings.mlflow_backend == "postgres":
        results.append(_step("PostgreSQL server", postgres_server.bin_dir, say))
        results.append(
            _step("S3 server (SeaweedFS)", lambda: object_store.ensure_binary(settings), say)
        )
    results.append(_step("embedding model", lambda: models.embedding_model_path(settings), say))
    if settings.base_model:
        say(f"✓ base model: {settings.base_model} (DUALENGINE_BASE_MODEL)")
    else:
        results.append(
            _step(
                "base model (SmolLM2-135M-Instruct, cached safetensors)",
                lambda: models.ensure_smollm2(settings),
                say,
            )
        )
        if settings.profile == "tiny":
            results.append(
                _step("tiny test model", lambda: models.ensure_tiny_model(settings), say)
            )
    return all(results)
