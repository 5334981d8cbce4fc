"""Torch threads per path: one vs two threads for a LoRA training step, batch scoring and a
single answer on the `default` base model, alternating in one run, with the load recorded.

    .venv/bin/python benchmarks/threads_bench.py [--repeats 2] [--threads 1 2]

Paths: `train` = forward + backward of a LoRA (q/k/v/o, r 8) batch of 4 × 512 tokens through
the project's loss (tasks.training.answer_loss); `batch` = `answer_many` of 4 held-out prompts
(one batch, 16 new tokens); `single` = one answer. Prints seconds per path and thread count
and the ratio to one thread; writes benchmarks/results/threads.json. Settings.threads() uses
one thread while the services run on the same machine: rerun this on your machine before you
set DUALENGINE_TORCH_THREADS.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "threads.json"))
    args = parser.parse_args()

    import torch
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    from benchmarks.inference_bench import prompts_from_held_out
    from dualengine.models import base_model_path
    from dualengine.settings import Settings
    from tasks.generation import load_generator
    from tasks.training import TrainingExample, answer_loss, collate, lora_config

    load_before = os.getloadavg()
    settings = Settings(profile="default")
    profile = settings.training_profile()
    base = base_model_path(settings)
    generator = load_generator(base, None, settings.context_length())
    items = prompts_from_held_out(settings, 4, profile.seed)
    system, new = profile.system_prompt, profile.max_new_tokens
    trainee = get_peft_model(
        AutoModelForCausalLM.from_pretrained(base), lora_config(profile.as_dict())
    )
    ids = torch.randint(100, 40000, (4, 512)).tolist()
    batch = collate([TrainingExample(r, [-100] * 500 + r[500:]) for r in ids], 0)

    def train() -> None:
        trainee.zero_grad()
        answer_loss(trainee, batch).backward()

    def scoring() -> None:
        generator.answer_many(
            system, [i["question"] for i in items], [i["ctx"] for i in items], new, batch_size=4
        )

    def single() -> None:
        generator.answer_many(system, [items[0]["question"]], [items[0]["ctx"]], new)

    paths = {"train": train, "batch": scoring, "single": single}
    seconds: dict[str, dict[int, list[float]]] = {p: {t: [] for t in args.threads} for p in paths}
    for repeat in range(args.repeats):
        order = args.threads if repeat % 2 == 0 else list(reversed(args.threads))
        for name, run in paths.items():
            for threads in order:
                torch.set_num_threads(threads)
                started = time.perf_counter()
                run()
                seconds[name][threads].append(time.perf_counter() - started)
    first = args.threads[0]
    result = {
        "when": time.strftime("%Y-%m-%d %H:%M"),
        "cores": os.cpu_count(),
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "seconds_median": {
            p: {t: round(statistics.median(v), 2) for t, v in by.items()}
            for p, by in seconds.items()
        },
        f"ratio_to_{first}_thread": {
            p: {
                t: round(statistics.median(v) / statistics.median(by[first]), 2)
                for t, v in by.items()
            }
            for p, by in seconds.items()
        },
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
