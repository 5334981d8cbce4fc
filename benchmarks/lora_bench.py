"""P4: LoRA training throughput of the project's training path ÷ a bare PEFT + torch loop.

    .venv/bin/python benchmarks/lora_bench.py [--profile default] [--steps 10] [--repeats 2]

Both loops train the same base model with the same LoRA settings on the same encoded RAFT-style
examples (XQuAD sample: question + oracle + distractor passages), batch by batch in the same
order. The project path is `tasks.training.train_lora` (Accelerate, gradient accumulation,
schedule, progress reporting, reduction, checkpoint bookkeeping) exactly as the finetune flow
calls it; the bare loop is model(**batch).loss → backward → AdamW step. They alternate
`--repeats` times in one process; the ratio is of the mean tokens/s. Also prints peak RSS (and
peak GPU memory on a GPU) and the adapter size.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def examples_for(settings, tokenizer, params, n):
    from tasks.data import read_jsonl, sample_dataset_paths
    from tasks.raft import build_raft_examples
    from tasks.training import encode_example

    paths = sample_dataset_paths(settings.data_dir, settings.params())
    corpus = {d["id"]: d for d in read_jsonl(paths.corpus)}
    ids = sorted(corpus)
    rng = random.Random(0)
    rows = rng.sample(read_jsonl(paths.train), n)

    def retrieve(_question):
        return [{"passage_id": i, **corpus[i]} for i in rng.sample(ids, 3)]

    raft = build_raft_examples(rows, corpus, retrieve, 2, 0.2, 0)
    return [
        encode_example(
            tokenizer,
            params["system_prompt"],
            e["question"],
            e["passages"],
            e["target"],
            params["max_length"],
        )
        for e in raft
    ]


def bare_loop(base, examples, params):
    import torch
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    from tasks.hardware import resolve_mixed_precision
    from tasks.training import batch_order, collate, lora_config, set_seed

    set_seed(params["seed"])
    device = "cuda" if torch.cuda.is_available() else "cpu"
    precision = resolve_mixed_precision(params.get("mixed_precision", "no"))
    dtype = torch.bfloat16 if precision == "bf16" else None  # the project path's autocast
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base), lora_config(params))
    model.to(device)
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=params["learning_rate"]
    )
    order = [examples[i] for i in batch_order(examples, params, 0)]  # as the project path
    bs = params["batch_size"]
    tokens, started = 0, time.perf_counter()
    model.train()
    for step in range(params["max_steps"]):
        batch = collate(order[(step * bs) % len(order) :][:bs], 0)
        batch = {k: v.to(device) for k, v in batch.items()}
        with torch.autocast(device, dtype=dtype, enabled=dtype is not None):
            loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        tokens += int(batch["attention_mask"].sum())
    if device == "cuda":
        torch.cuda.synchronize()
    return tokens / (time.perf_counter() - started)


def project_loop(base, examples, params, out):
    from tasks.training import train_lora

    result = train_lora(
        base, examples, params, out, on_step=lambda s, v: None, checkpoint_dir=out.parent / "ckpt"
    )
    return result.tokens_per_second


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="default")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--base-model")
    parser.add_argument("--require-gpu", action="store_true")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    os.environ["DUALENGINE_PROFILE"] = args.profile
    if args.base_model:
        os.environ["DUALENGINE_BASE_MODEL"] = args.base_model
    import torch

    if args.require_gpu and not torch.cuda.is_available():
        sys.exit("no GPU visible to torch")
    from dualengine.models import base_model_path
    from dualengine.settings import get_settings
    from tasks.hardware import configure_threads
    from tasks.training import load_tokenizer

    settings = get_settings()
    configure_threads(settings.threads())
    params = settings.training_params() | {
        "max_steps": args.steps,
        "checkpoint_every": 0,
        "eval_every": 0,
    }
    base = base_model_path(settings)
    tokenizer = load_tokenizer(base)
    examples = examples_for(settings, tokenizer, params, max(64, params["batch_size"] * 8))
    bare, project = [], []
    folder = Path(tempfile.mkdtemp(prefix="lora-bench-"))
    for repeat in range(args.repeats):
        bare.append(bare_loop(base, examples, params))
        project.append(project_loop(base, examples, params, folder / f"adapter{repeat}"))
        print(
            f"repeat {repeat}: bare {bare[-1]:.1f} tok/s, project {project[-1]:.1f} tok/s",
            file=sys.stderr,
        )
    adapter = folder / "adapter0"
    adapter_bytes = sum(
        p.stat().st_size
        for p in adapter.rglob("*")
        if p.is_file() and p.name.startswith("adapter_model")
    )
    result = {
        "profile": args.profile,
        "base_model": base,
        "device": "cuda"
        if torch.cuda.is_available()
        else f"cpu ({torch.get_num_threads()} threads)",
        "steps": args.steps,
        "batch_size": params["batch_size"],
        "max_length": params["max_length"],
        "bare_tokens_per_s": round(sum(bare) / len(bare), 1),
        "project_tokens_per_s": round(sum(project) / len(project), 1),
        "ratio": round(sum(project) / sum(bare), 3),
        "target": ">= 0.95",
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "adapter_mib": round(adapter_bytes / 2**20, 2),
    }
    if torch.cuda.is_available():
        result["peak_gpu_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    print(json.dumps(result, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
