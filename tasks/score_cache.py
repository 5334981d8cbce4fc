"""A cache of the base model's evaluation scores, stored as MLflow artifacts.

The base model's answers on the held-out questions depend only on the base weights, the
questions with their contexts (held-out set and index version) and the scoring parameters, so
the promotion gate and the attribution evaluation score it once per such key and read it back
afterwards. The key holds every input; anything that changes one of them (other weights, a
re-index that changes a retrieved passage, another prompt or token budget, new scoring code)
gives another key and a fresh scoring. Each entry is one run in the `dualengine-score-cache`
experiment, tagged `score_key`, with the scores in `scores.json`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

EXPERIMENT = "dualengine-score-cache"
ARTIFACT = "scores.json"
# bump when the scoring code changes what it measures (metrics, prompts, NLL targets)
SCORING_VERSION = "3"  # 3: NLL from the answer's prefill


def digest(value: Any) -> str:
    """A short stable id of any JSON-serialisable value."""
    text = json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@lru_cache(maxsize=16)
def _files_digest(folder: str, stamp: tuple[tuple[str, int, int], ...]) -> str:
    combined = hashlib.sha256()
    for name, _, _ in stamp:
        combined.update(name.encode())
        with open(Path(folder) / name, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                combined.update(block)
    return combined.hexdigest()[:16]


def model_digest(model: str) -> str:
    """Content digest of a local model folder's weights and configuration (read once per
    file version); a hub id stands for itself."""
    folder = Path(model)
    if not folder.is_dir():
        return model
    wanted = sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and (p.suffix in (".safetensors", ".bin") or p.name == "config.json")
    )
    stamp = tuple((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in wanted)
    return _files_digest(str(folder), stamp)


def score_key(parts: dict[str, Any]) -> str:
    """The cache key of these scoring inputs (with the scoring code's version)."""
    return digest({"scoring_version": SCORING_VERSION, **parts})


def load(key: str) -> dict[str, Any] | None:
    """The cached scores of a key, or None."""
    import mlflow

    experiment = mlflow.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        return None
    runs = mlflow.search_runs(
        experiment_ids=[experiment.experiment_id],
        filter_string=f"tags.score_key = '{key}' and attributes.status = 'FINISHED'",
        max_results=1,
        output_format="list",
    )
    if not runs:
        return None
    entry = mlflow.artifacts.load_dict(f"{runs[0].info.artifact_uri}/{ARTIFACT}")
    return entry | {"run_id": runs[0].info.run_id}


def save(key: str, parts: dict[str, Any], scores: Any) -> str:
    """Store scores under a key (the key's parts as tags and in the artifact); its run id."""
    from mlflow import MlflowClient

    client = MlflowClient()
    found = client.get_experiment_by_name(EXPERIMENT)
    experiment = found.experiment_id if found else client.create_experiment(EXPERIMENT)
    tags = {"score_key": key} | {f"key.{k}": str(v)[:250] for k, v in parts.items()}
    run = client.create_run(experiment, tags=tags, run_name=f"{parts.get('kind', 'scores')}-{key}")
    client.log_dict(run.info.run_id, {"key": key, "parts": parts, "scores": scores}, ARTIFACT)
    client.set_terminated(run.info.run_id)
    return run.info.run_id


def cached(parts: dict[str, Any], compute: Callable[[], Any]) -> tuple[Any, dict[str, Any]]:
    """The scores for these inputs from the cache, else computed and stored; with a note of
    where they came from ({key, from_cache, run_id})."""
    key = score_key(parts)
    found = load(key)
    if found is not None:
        return found["scores"], {"key": key, "from_cache": True, "run_id": found["run_id"]}
    scores = compute()
    run_id = save(key, parts, scores)
    return scores, {"key": key, "from_cache": False, "run_id": run_id}
