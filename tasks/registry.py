"""MLflow model registry: register adapters, move the challenger / champion aliases."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

CHAMPION = "champion"
CHALLENGER = "challenger"


@dataclass
class PromotionDecision:
    """Why the champion alias moved, or why it stayed."""

    model_name: str
    challenger_version: str
    champion_before: str | None
    champion_after: str
    promoted: bool
    metric: str
    challenger_score: float
    champion_score: float | None
    margin: float
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def decide(
    challenger_score: float, champion_score: float | None, margin: float
) -> tuple[bool, str]:
    """Pure gate: promote when there is no champion or the challenger beats it by the margin."""
    if champion_score is None:
        return True, "no champion yet"
    if challenger_score > champion_score + margin:
        return True, f"challenger {challenger_score:.4f} > champion {champion_score:.4f} + {margin}"
    return False, (
        f"challenger {challenger_score:.4f} does not beat champion {champion_score:.4f} + {margin}"
    )


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


def version_score(version, metric: str) -> float | None:
    value = (version.tags or {}).get(metric)
    return float(value) if value not in (None, "") else None


def promote(name: str, challenger: str, metric: str, margin: float) -> PromotionDecision:
    """Mark the new version `challenger`; move `champion` to it if the gate passes."""
    client = _client()
    client.set_registered_model_alias(name, CHALLENGER, challenger)
    candidate = client.get_model_version(name, challenger)
    challenger_score = version_score(candidate, metric)
    if challenger_score is None:
        raise ValueError(f"model {name} v{challenger} has no '{metric}' tag to gate on")
    current = version_by_alias(name, CHAMPION)
    champion_score = version_score(current, metric) if current else None
    promoted, reason = decide(challenger_score, champion_score, margin)
    if promoted:
        client.set_registered_model_alias(name, CHAMPION, challenger)
    decision = PromotionDecision(
        model_name=name,
        challenger_version=challenger,
        champion_before=str(current.version) if current else None,
        champion_after=challenger if promoted else str(current.version),
        promoted=promoted,
        metric=metric,
        challenger_score=challenger_score,
        champion_score=champion_score,
        margin=margin,
        reason=reason,
    )
    client.set_model_version_tag(name, challenger, "gate_decision", reason)
    return decision


def download_version(name: str, alias: str, target_root) -> tuple[Any, str]:
    """The version behind an alias and a local copy of its adapter (cached by version)."""
    import mlflow

    version = version_by_alias(name, alias)
    if version is None:
        raise LookupError(f"model '{name}' has no '{alias}' version yet: run `dualengine run`")
    target = target_root / name / str(version.version)
    if not (target / "adapter_config.json").exists():
        target.mkdir(parents=True, exist_ok=True)
        mlflow.artifacts.download_artifacts(artifact_uri=version.source, dst_path=str(target))
        nested = target / version.source.rstrip("/").rsplit("/", 1)[-1]
        if nested.is_dir() and not (target / "adapter_config.json").exists():
            for item in nested.iterdir():
                item.rename(target / item.name)
            nested.rmdir()
    return version, str(target)
