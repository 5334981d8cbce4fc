"""MLflow model registry: register adapters, move the challenger / champion aliases."""

from __future__ import annotations

from typing import Any

CHAMPION = "champion"
CHALLENGER = "challenger"


def _client():
    from mlflow import MlflowClient

    return MlflowClient()


def ensure_registered_model(name: str, description: str) -> None:
    from mlflow.exceptions import MlflowException

    client = _client()
    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name, description=description)


def register_adapter(
    name: str, run_id: str, artifact_path: str, tags: dict[str, Any], description: str
) -> str:
    """Register the run's adapter folder as a new model version; returns the version."""
    import mlflow

    ensure_registered_model(
        name, "LoRA adapters of the dualengine behaviour engine (the base model is referenced)."
    )
    source = f"{mlflow.get_run(run_id).info.artifact_uri}/{artifact_path}"
    version = _client().create_model_version(
        name,
        source=source,
        run_id=run_id,
        tags={k: str(v) for k, v in tags.items()},
        description=description,
    )
    return str(version.version)


def version_by_alias(name: str, alias: str):
    from mlflow.exceptions import MlflowException

    try:
        return _client().get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


HISTORY_TAG = "champion_history"


def set_alias(name: str, alias: str, version: str) -> None:
    """Point an alias at a version; champion moves are appended to the model's history tag."""
    client = _client()
    client.set_registered_model_alias(name, alias, version)
    if alias == CHAMPION:
        history = champion_history(name)
        if not history or history[-1] != str(version):
            history.append(str(version))
        client.set_registered_model_tag(name, HISTORY_TAG, ",".join(history))


def champion_history(name: str) -> list[str]:
    tags = _client().get_registered_model(name).tags or {}
    return [v for v in tags.get(HISTORY_TAG, "").split(",") if v]


def rollback_champion(name: str) -> tuple[str, str]:
    """Move `champion` back to the version that held it before; returns (from, to)."""
    history = champion_history(name)
    if len(history) < 2:
        raise LookupError(f"model '{name}' has no earlier champion to roll back to")
    current, previous = history[-1], history[-2]
    client = _client()
    client.set_registered_model_alias(name, CHAMPION, previous)
    client.set_registered_model_tag(name, HISTORY_TAG, ",".join(history[:-1]))
    client.set_model_version_tag(name, current, "rolled_back_from_champion", "true")
    return current, previous


def download_version(name: str, ref: str, target_root) -> tuple[Any, str]:
    """The version behind an alias (or a version number) and a local copy of its adapter."""
    import mlflow

    if str(ref).isdigit():
        version = _client().get_model_version(name, str(ref))
    else:
        version = version_by_alias(name, ref)
    if version is None:
        raise LookupError(f"model '{name}' has no '{ref}' version yet: run `dualengine run`")
    # keyed by run too: another tracking server may have a version with the same number
    target = target_root / name / f"{version.version}-{(version.run_id or 'norun')[:12]}"
    if not (target / "adapter_config.json").exists():
        target.mkdir(parents=True, exist_ok=True)
        mlflow.artifacts.download_artifacts(artifact_uri=version.source, dst_path=str(target))
        nested = target / version.source.rstrip("/").rsplit("/", 1)[-1]
        if nested.is_dir() and not (target / "adapter_config.json").exists():
            for item in nested.iterdir():
                item.rename(target / item.name)
            nested.rmdir()
    return version, str(target)
