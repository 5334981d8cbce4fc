"""P7: CPU answering speed, fp32 vs bf16 vs dynamic int8, against the machine's physical limit.

    .venv/bin/python benchmarks/inference_bench.py [--questions 40] [--single 6] [--threads 1]

On the `default` base model (SmolLM2-135M-Instruct, converted in ~/.cache/dualengine) and real
held-out XQuAD questions, each prompted like the gate's retrieved condition: the gold paragraph
and two other paragraphs of the same article (seeded order), the training system prompt, the
answering context length. In one run, alternating fp32 and int8:

- single answers (batch 1): latency p50 per mode and their ratio;
- batch scoring (`answer_many`, batches of 8): answers/s per mode;
- quality: token-F1 per question in both modes, the paired mean difference with a 95 %
  bootstrap interval, and how many greedy answers are identical;
- the physical limit (benchmarks/physical_limit.py): FLOPs per answer ÷ (threads × the fp32
  matmul GFLOP/s per core measured here), and each mode's share of it.

The 1-, 5- and 15-minute load averages are recorded before and after (the machine is shared).
Results go to benchmarks/results/inference.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def prompts_from_held_out(settings, n: int, seed: int) -> list[dict]:
    from tasks.data import read_jsonl, sample_dataset_paths
    from tasks.raft import answer_window

    paths = sample_dataset_paths(settings.data_dir, settings.params())
    corpus = {str(d["id"]): d for d in read_jsonl(paths.corpus)}
    by_title: dict[str, list[str]] = {}
    for doc_id, doc in corpus.items():
        by_title.setdefault(doc["title"], []).append(doc_id)
    rng = random.Random(seed)
    rows = rng.sample(read_jsonl(paths.eval), n)
    items = []
    for row in rows:
        gold = str(row["relevant_ids"][0])
        others = [d for d in by_title[corpus[gold]["title"]] if d != gold]
        chosen = [gold, *rng.sample(others, min(2, len(others)))]
        rng.shuffle(chosen)
        passages = [
            {
                "passage_id": f"{d}#0",
                "title": corpus[d]["title"],
                "text": answer_window(corpus[d]["text"], row["answer"], 150),
            }
            for d in chosen
        ]
        items.append({"question": row["question"], "answer": row["answer"], "ctx": passages})
    return items


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--questions", type=int, default=40)
    parser.add_argument("--single", type=int, default=6, help="single answers timed per mode")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--modes", default="none,bf16", help="inference.quantize values; the first is the reference"
    )
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "inference.json"))
    args = parser.parse_args()

    import torch

    from benchmarks.physical_limit import answer_flops, matmul_gflops
    from dualengine.models import base_model_path
    from dualengine.settings import Settings
    from tasks.evaluation import token_f1
    from tasks.gate import paired_difference
    from tasks.generation import load_generator
    from tasks.raft import split_citation

    load_before = os.getloadavg()
    torch.set_num_threads(args.threads)
    settings = Settings(profile="default")
    profile = settings.training_profile()
    base = base_model_path(settings)
    system, new = profile.system_prompt, profile.max_new_tokens
    items = prompts_from_held_out(settings, args.questions, profile.seed)
    questions = [i["question"] for i in items]
    contexts = [i["ctx"] for i in items]
    modes = args.modes.split(",")
    gens = {m: load_generator(base, None, settings.context_length(), m) for m in modes}
    lengths = [len(p) for p in gens[modes[0]].prompts(system, questions, contexts, new)]
    gflops = matmul_gflops(1)
    config = gens[modes[0]].model.config
    flops = statistics.mean(answer_flops(config, n, new) for n in lengths)
    limit = args.threads * gflops * 1e9 / flops  # answers/s the fp32 matmul speed allows

    single: dict[str, list[float]] = {m: [] for m in modes}
    for i in range(min(args.single, len(items))):
        for mode in modes if i % 2 == 0 else modes[::-1]:
            started = time.perf_counter()
            gens[mode].answer_many(system, questions[i : i + 1], contexts[i : i + 1], new)
            single[mode].append(time.perf_counter() - started)
    answers, seconds = {}, {}
    for mode in modes:
        started = time.perf_counter()
        answers[mode] = gens[mode].answer_many(system, questions, contexts, new, raw=True)
        seconds[mode] = time.perf_counter() - started
    f1 = {
        m: [
            token_f1(split_citation(a)[0], i["answer"])
            for a, i in zip(answers[m], items, strict=True)
        ]
        for m in answers
    }
    ref = modes[0]
    p50 = {m: statistics.median(v) for m, v in single.items()}
    result = {
        "when": time.strftime("%Y-%m-%d %H:%M"),
        "machine": f"{os.cpu_count()} cores, torch threads {args.threads}",
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "base_model": base,
        "questions": len(items),
        "mean_prompt_tokens": round(statistics.mean(lengths), 1),
        "max_new_tokens": new,
        "matmul_gflops_fp32_per_core": round(gflops, 1),
        "gflop_per_answer": round(flops / 1e9, 1),
        "limit_answers_per_s_fp32": round(limit, 3),
        "single_p50_s": {m: round(v, 3) for m, v in p50.items()},
        "single_speedup_over_" + ref: {m: round(p50[ref] / p50[m], 2) for m in modes},
        "batch_answers_per_s": {m: round(len(items) / s, 3) for m, s in seconds.items()},
        "batch_speedup_over_" + ref: {m: round(seconds[ref] / seconds[m], 2) for m in modes},
        "batch_share_of_fp32_limit": {
            m: round(len(items) / s / limit, 3) for m, s in seconds.items()
        },
        "f1_mean": {m: round(statistics.mean(v), 4) for m, v in f1.items()},
        "f1_minus_" + ref: {
            m: {
                k: round(v, 4)
                for k, v in paired_difference(f1[m], f1[ref], profile.seed, 1000).items()
            }
            for m in modes[1:]
        },
        "identical_answers_to_" + ref: {
            m: sum(a == b for a, b in zip(answers[ref], answers[m], strict=True)) for m in modes[1:]
        },
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
