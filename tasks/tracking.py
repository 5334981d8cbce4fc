"""MLflow tracking helpers: experiments, dataset inputs with their data version."""

from __future__ import annotations

from pathlib import Path
from typing import Any

KNOWLEDGE_EXPERIMENT = "dualengine-knowledge"
BEHAVIOUR_EXPERIMENT = "dualengine-behaviour"


def use_experiment(name: str) -> str:
    import mlflow

    return mlflow.set_experiment(name).experiment_id


def log_dataset(
    records: list[dict[str, Any]], path: Path, name: str, context: str, data_version: str
) -> None:
    """Record a dataset as an MLflow run input, with its file digest and data version."""
    import pandas as pd

    import mlflow
    from tasks.data import file_digest

    frame = pd.DataFrame.from_records(records)
    for column in frame.columns:  # lists are not hashable by MLflow's digest
        if frame[column].map(lambda v: isinstance(v, list)).any():
            frame[column] = frame[column].map(
                lambda v: ",".join(map(str, v)) if isinstance(v, list) else v
            )
    dataset = mlflow.data.from_pandas(
        frame, source=str(path), name=name, digest=file_digest(path)[:12]
    )
    mlflow.log_input(dataset, context=context, tags={"data_version": data_version})
