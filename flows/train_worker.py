"""Training entry point shared by the flow (in-process) and `accelerate launch` (any number of
processes): `accelerate launch [--config_file infra/accelerate/X.yaml] -m flows.train_worker
SPEC.json`. The spec names the base model, the RAFT example files, the parameters, the output
and checkpoint folders and (optionally) the MLflow run to log per-step metrics into."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any


def run_training(spec: dict[str, Any]) -> dict[str, Any]:
    from tasks.data import read_jsonl
    from tasks.raft import encode_raft_examples
    from tasks.training import configure_threads, load_tokenizer, train_lora

    configure_threads(spec.get("torch_threads"))
    params = spec["params"]
    tokenizer = load_tokenizer(spec["base_model"])
    length = int(params.get("context_length") or params["max_length"])
    dropped: list[str] = []

    def encode(path: str | None):
        """Whole-prompt examples at the answering context length; the rest are dropped."""
        if not path:
            return None
        kept, lost = encode_raft_examples(
            tokenizer, spec["system_prompt"], read_jsonl(Path(path)), length
        )
        dropped.extend(lost)
        return kept

    run_id = spec.get("mlflow_run_id")
    client = None
    if run_id:
        from mlflow import MlflowClient

        client = MlflowClient()

    def log(name: str):
        if client is None:
            return None
        return lambda step, value: client.log_metric(run_id, name, value, step=step)

    train = encode(spec["train_path"])
    held = encode(spec.get("eval_path"))
    if not train:
        raise ValueError(
            f"{spec['train_path']}: no training example fits {length} tokens with its passages "
            f"whole ({len(dropped)} dropped)"
        )
    result = train_lora(
        spec["base_model"],
        train,
        params,
        Path(spec["output_dir"]),
        on_step=log("train_loss"),
        eval_examples=held or None,
        on_eval=log("eval_loss"),
        checkpoint_dir=Path(spec["checkpoint_dir"]) if spec.get("checkpoint_dir") else None,
        resume=bool(spec.get("resume")),
    )
    summary = asdict(result) | {
        "tokens_per_second": result.tokens_per_second,
        "dropped_examples": dropped,
        "context_length": length,
    }
    if spec.get("result_path"):
        from accelerate import PartialState

        if PartialState().is_main_process:
            Path(spec["result_path"]).write_text(json.dumps(summary))
    return summary


if __name__ == "__main__":
    run_training(json.loads(Path(sys.argv[1]).read_text()))
