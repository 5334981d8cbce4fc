"""Prefect tasks of the behaviour engine's training: RAFT data, its gate, LoRA training (in
process or through `accelerate launch`) and the challenger's registration."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from dualengine.config import Profile, RaftSection
from dualengine.models import base_model_path
from dualengine.settings import Settings
from flows.steps.data import gate_on_reports
from flows.steps.heldout import gold_chunker, search_questions
from tasks import registry, tracking
from tasks.data import DatasetPaths, files_version, read_jsonl, write_jsonl
from tasks.validation import validate_training_examples

STEP = {"cache_policy": NO_CACHE, "persist_result": False}


def style_examples(
    settings: Settings, profile: Profile, raft: RaftSection
) -> tuple[list[dict[str, Any]], int]:
    """RAFT examples of the indexed corpora with their own answer style (`training.styles`,
    e.g. long-form SEC answers): questions of the training companies' filings only
    (tasks.data.split_by_company; the evaluated filings are never trained on), whole chunks,
    the long-form answer flattened to one paragraph as target, the style's system prompt per
    example. Examples whose passages hold personal data are left out (returned count)."""
    import random

    from tasks.data import sample_set, split_by_company
    from tasks.pii import find_pii
    from tasks.raft import build_raft_examples

    config = settings.config()
    out: list[dict[str, Any]] = []
    skipped = 0
    for name, style in config.training.styles.items():
        if name not in config.knowledge.corpora or not style.train_examples:
            continue
        corpus_path, eval_path = sample_set(settings.data_dir, settings.params(), name)
        corpus = {str(d["id"]): d for d in read_jsonl(corpus_path)}
        train, _ = split_by_company(
            read_jsonl(eval_path), style.train_companies, config.training.seed
        )
        rows = random.Random(profile.seed).sample(train, min(len(train), style.train_examples))
        rows = [
            r | {"passage_id": str(r["relevant_ids"][0]), "answer": " ".join(r["answer"].split())}
            for r in rows
        ]
        k = raft.distractors + 2
        hits = search_questions(settings, [r["question"] for r in rows], k, list(style.groups))
        found = {r["question"]: [p.as_dict() for p in h] for r, h in zip(rows, hits, strict=True)}
        gold = gold_chunker(settings, corpus)
        examples = build_raft_examples(
            rows,
            corpus,
            lambda q, found=found: found[q],
            raft.distractors,
            raft.oracle_missing_fraction,
            profile.seed,
            gold=lambda item, gold=gold: gold(item["passage_id"], item["answer"]),
        )
        system = style.system
        for e in examples:
            if any(find_pii(p["text"]) for p in e["passages"]):
                skipped += 1
                continue
            out.append(e | {"system": system, "style": name})
    return out, skipped


@task(name="build-raft-data", **STEP)
def build_raft_data(
    settings: Settings, paths: DatasetPaths, instructions: str | None = None
) -> dict[str, str]:
    """RAFT examples for training questions (+ a held-out slice for eval loss), from the live
    index, plus plain (instruction, output) rows for tone and format rules when given;
    written to data/prepared/raft/ (the DVC `raft` stage's outputs)."""
    from tasks.pii import find_pii
    from tasks.raft import build_raft_examples, instruction_examples

    profile = settings.training_profile()
    raft = settings.config().training.raft
    corpus = {str(d["id"]): d for d in read_jsonl(paths.corpus)}
    import random

    rows = read_jsonl(paths.train)
    rng = random.Random(profile.seed)
    rows = rng.sample(rows, min(len(rows), profile.train_examples + raft.eval_held_out))
    k = raft.distractors + 2
    hits = search_questions(settings, [r["question"] for r in rows], k, raft.distractor_groups)
    # a passage holding personal data is never a distractor (the next hit takes its place)
    lookup = {
        r["question"]: [p.as_dict() for p in h if not find_pii(p.as_dict()["text"])]
        for r, h in zip(rows, hits, strict=True)
    }
    gold = gold_chunker(settings, corpus)
    built = build_raft_examples(
        rows,
        corpus,
        lambda q: lookup[q],
        raft.distractors,
        raft.oracle_missing_fraction,
        profile.seed,
        raft.passage_words,
        gold=lambda item: gold(str(item["passage_id"]), item["answer"]),
    )
    examples = [e for e in built if not any(find_pii(p["text"]) for p in e["passages"])]
    held = raft.eval_held_out if len(examples) > raft.eval_held_out * 2 else 0
    extra = instruction_examples(read_jsonl(Path(instructions))) if instructions else []
    styled, styled_skipped = style_examples(settings, profile, raft)
    training = examples[held:] + styled + extra
    random.Random(profile.seed + 1).shuffle(training)
    out = settings.raft_path
    train_path, eval_path = out / "train.jsonl", out / "eval.jsonl"
    write_jsonl(train_path, training)
    write_jsonl(eval_path, examples[:held])
    version = files_version({"train": train_path, "eval": eval_path})
    refusals = sum(1 for e in examples if not e["oracle_included"])
    create_markdown_artifact(
        key="raft-data",
        markdown=f"## RAFT training data `{version}`\n\n{len(examples) - held} training and "
        f"{held} held-out examples ({len(built) - len(examples)} left out: personal data in "
        f"the gold passage); {len(styled)} examples in a corpus's own answer style "
        f"({styled_skipped} left out: personal data in a passage); {len(extra)} instruction rows; "
        f"{raft.distractors} distractors each from the live index; "
        f"oracle left out in {refusals} (target: refusal).\n\nExample:\n```json\n"
        + json.dumps(examples[-1], indent=2, ensure_ascii=False)[:2500]
        + "\n```",
        description="Behaviour-engine training data",
    )
    return {"train": str(train_path), "eval": str(eval_path), "version": version}


@task(name="validate-training-data", **STEP)
def validate_training_data(settings: Settings, raft: dict[str, str]) -> None:
    """GX gate on the built examples: non-empty, within the context window, no PII."""
    from tasks.prompting import prompt_ids
    from tasks.training import load_tokenizer

    profile = settings.training_profile()
    tokenizer = load_tokenizer(base_model_path(settings))

    def count(example: dict[str, Any]) -> int:
        messages = [
            {"role": "system", "content": profile.system_prompt},
            {"role": "user", "content": f"Question: {example['question']}"},
        ]
        target = tokenizer(example["target"], add_special_tokens=False)["input_ids"]
        return len(prompt_ids(tokenizer, messages)) + len(target)

    sets = {name: read_jsonl(Path(raft[name])) for name in ("train", "eval")}
    reports = [
        validate_training_examples(name, Path(raft[name]), rows, count, profile.max_length)
        for name, rows in sets.items()
        if rows or name == "train"  # the held-out slice may be empty for small sets
    ]
    gate_on_reports(
        reports,
        "training-data-validation",
        "Training data",
        "Great Expectations on the RAFT examples (length, PII)",
    )


def checkpoint_folder(settings: Settings, raft_version: str) -> Path:
    key = json.dumps(
        {
            "data": raft_version,
            "params": settings.training_profile().as_dict(),
            "base": base_model_path(settings),
        },
        sort_keys=True,
        default=str,
    )
    return settings.state / "checkpoints" / hashlib.sha256(key.encode()).hexdigest()[:12]


def launch_training(
    spec: dict[str, Any], accelerate_config: str | None, num_processes: int
) -> dict[str, Any]:
    """In this process, or through `accelerate launch` for several processes or a config."""
    if not accelerate_config and num_processes <= 1:
        from tasks.training import run_training

        return run_training(spec)
    spec_path = Path(spec["output_dir"]).parent / "spec.json"
    spec["result_path"] = str(spec_path.with_name("result.json"))
    spec_path.write_text(json.dumps(spec))
    command = [sys.executable, "-m", "accelerate.commands.launch"]
    if accelerate_config:
        command += ["--config_file", accelerate_config]
    else:
        command += ["--num_processes", str(num_processes), "--num_machines", "1"]
        if not _cuda():
            command += ["--cpu"]
    command += ["-m", "flows.train_worker", str(spec_path)]
    subprocess.run(command, check=True, env=dict(os.environ))
    return json.loads(Path(spec["result_path"]).read_text())


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


@task(name="train-adapter", **STEP)
def train_adapter(
    settings: Settings,
    raft: dict[str, str],
    index: dict[str, Any],
    data_version: str,
    resume: bool = False,
    accelerate_config: str | None = None,
    num_processes: int = 1,
) -> dict[str, Any]:
    """LoRA fine-tuning through Accelerate, tracked in the behaviour experiment; only the adapter
    is stored, the base model is referenced."""
    import mlflow

    profile = settings.training_profile()
    base = base_model_path(settings)
    checkpoints = checkpoint_folder(settings, raft["version"])
    run_file = checkpoints / "mlflow_run_id"
    tracking.use_experiment(tracking.BEHAVIOUR_EXPERIMENT)
    run_id = run_file.read_text().strip() if resume and run_file.exists() else None
    with mlflow.start_run(
        run_id=run_id, run_name=None if run_id else f"lora-{settings.profile}-{raft['version']}"
    ) as run:
        if run_id is None:
            mlflow.log_params(
                {k: v for k, v in profile.as_dict().items() if k != "system_prompt"}
                | {
                    "base_model": base,
                    "profile": settings.profile,
                    "num_processes": num_processes,
                    "accelerate_config": accelerate_config or "in-process",
                }
            )
            mlflow.set_tags(
                {
                    "data_version": data_version,
                    "raft_version": raft["version"],
                    "index_version": index.get("index_version", ""),
                    "index_collection": index.get("collection", ""),
                    "base_model": base,
                }
            )
            tracking.log_dataset(
                read_jsonl(Path(raft["train"])),
                Path(raft["train"]),
                "raft-train",
                "training",
                raft["version"],
            )
            checkpoints.mkdir(parents=True, exist_ok=True)
            run_file.write_text(run.info.run_id)
        adapter_dir = Path(tempfile.mkdtemp(prefix="dualengine-adapter-")) / "adapter"
        spec = {
            "base_model": base,
            "train_path": raft["train"],
            "eval_path": raft["eval"] if read_jsonl(Path(raft["eval"])) else None,
            "params": profile.as_dict(),
            "system_prompt": profile.system_prompt,
            "output_dir": str(adapter_dir),
            "checkpoint_dir": str(checkpoints),
            "resume": resume,
            "mlflow_run_id": run.info.run_id,
            "torch_threads": settings.threads(),
        }
        result = launch_training(spec, accelerate_config, num_processes)
        dropped = list(result.get("dropped_examples", []))
        mlflow.log_param("dropped_examples", len(dropped))
        mlflow.log_dict(
            {"context_length": result.get("context_length"), "dropped_ids": dropped},
            "dropped_examples.json",
        )
        mlflow.log_metrics(
            {
                "dropped_examples": len(dropped),
                "train_tokens_per_second": result["tokens_per_second"],
                "train_seconds": result["seconds"],
                "train_steps": result["steps"],
                "trainable_params": result["trainable_params"],
                "stopped_early": float(result["stopped_early"]),
            }
        )
        mlflow.log_artifacts(str(adapter_dir), artifact_path="adapter")
    summary = {
        "run_id": run.info.run_id,
        "adapter_dir": str(adapter_dir),
        "base_model": base,
        "steps": result["steps"],
        "final_loss": result["final_loss"],
        "first_loss": result["losses"][0] if result["losses"] else None,
        "resumed_from": result["resumed_from"],
        "stopped_early": result["stopped_early"],
        "dropped_examples": len(dropped),
        "tokens_per_second": round(result["tokens_per_second"], 1),
        "raft_version": raft["version"],
    }
    create_markdown_artifact(
        key="lora-training",
        markdown="## LoRA fine-tuning\n\n| field | value |\n|---|---|\n"
        + "\n".join(f"| {k} | `{v}` |" for k, v in summary.items()),
        description="Behaviour engine training",
    )
    return summary


@task(name="register-challenger", **STEP)
def register_challenger(
    settings: Settings, training: dict[str, Any], index: dict[str, Any], data_version: str
) -> str:
    """A new generator version (tagged with data, index and base) behind alias `challenger`."""
    name = settings.config().registry.model_name
    tags = {
        "data_version": data_version,
        "raft_version": training["raft_version"],
        "index_version": index.get("index_version", ""),
        "base_model": training["base_model"],
        "profile": settings.profile,
    }
    version = registry.register_adapter(
        name,
        training["run_id"],
        "adapter",
        tags,
        description=f"LoRA adapter, data {data_version}, index {index.get('collection')}",
    )
    registry.set_alias(name, registry.CHALLENGER, version)
    return version
