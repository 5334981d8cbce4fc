"""Behaviour-engine quality on one GPU without services: train recipes, score held-out questions.

    # CPU side (here): chunk + embed the XQuAD corpus, retrieve top chunks for every question
    .venv/bin/python benchmarks/gpu_quality.py prepare [--carry .gpu_carry]
    # GPU side (benchmarks/gpu_quality.sh calls this): train and score every recipe
    python3 benchmarks/gpu_quality.py run --carry .gpu_carry --gguf model.gguf --out $OUT
    # CPU side afterwards: BCa intervals and the markdown table from the per-question results
    .venv/bin/python benchmarks/gpu_quality.py report results.json

`prepare` uses the project's own chunking (tasks.indexing) and MiniLM embeddings (tasks.embedding)
with brute-force cosine top-k in numpy instead of Weaviate's hybrid search, and writes only ids
and texts to the carry folder. `run` imports nothing that needs pydantic, Prefect, MLflow or
Weaviate: it builds the RAFT training examples (tasks.raft, whole chunks) and the held-out items
(tasks.heldout, the gate's builder) from the carried retrieval, trains with tasks.training's
`train_lora` and answers with tasks.generation's `Generator`. Recipes: the base model, the
`default` profile (3 seeds), the `gpu` profile and variants (more distractors), in that order;
optional ones are skipped when the time budget would be exceeded.

This module holds the command line and `run`; `prepare` is in gpu_quality_prepare.py, the
outputs and the BCa table in gpu_quality_report.py, the shared log in gpu_quality_common.py
(siblings import as top-level modules: Python puts a script's folder first on sys.path).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import time
from pathlib import Path
from typing import Any

from gpu_quality_common import CONDITIONS, ROOT, STARTED, WINDOW_WORDS, log
from gpu_quality_prepare import prepare
from gpu_quality_report import report, write_outputs


def load_params() -> dict[str, Any]:
    import yaml

    return yaml.safe_load((ROOT / "params.yaml").read_text())


def profile_params(params: dict[str, Any], profile: str) -> dict[str, Any]:
    """Like Settings.training_params: the profile merged with the shared training keys."""
    training = params["training"]
    return dict(training["profiles"][profile]) | {
        "system_prompt": " ".join(training["system_prompt"].split()),
        "seed": training["seed"],
    }


def answer_length(tp: dict[str, Any]) -> int:
    return int(tp.get("context_length") or tp["max_length"])


# ---------------------------------------------------------------- run (GPU or CPU dry run)


def recipes(dry_run: bool) -> list[dict[str, Any]]:
    """What to train and score, most important first; `optional` ones give way to the budget."""
    out = [
        {"name": "base", "profile": None},
        {"name": "gpu", "profile": "gpu"},
        {"name": "default-seed7", "profile": "default", "seed": 7},
        {"name": "default-seed8", "profile": "default", "seed": 8, "optional": True},
        {"name": "default-seed9", "profile": "default", "seed": 9, "optional": True},
        {
            "name": "gpu-3-distractors",
            "profile": "gpu",
            "raft": {"distractors": 3},
            "optional": True,
        },
        {"name": "gpu-seed8", "profile": "gpu", "seed": 8, "optional": True},
        # the shipped `default` with a seed no tuning run used (the CPU confirmation)
        {"name": "default-seed11", "profile": "default", "seed": 11, "optional": True},
    ]
    # `default` retuning (issue #10): the same CPU budget, 3 seeds each, run with --only
    variants = {
        "lr2e-3": {"learning_rate": 0.002},
        "lr2e-3-top15": {"learning_rate": 0.002, "layers": list(range(15, 30))},
        "lr3e-3": {"learning_rate": 0.003},
        "lr3e-3-bf16": {"learning_rate": 0.003, "mixed_precision": "bf16"},
        "lr5e-3": {"learning_rate": 0.005},
        "bf16": {"mixed_precision": "bf16"},
        "lr2e-3-bf16": {"learning_rate": 0.002, "mixed_precision": "bf16"},
    }
    for name, overrides in variants.items():
        for seed in (7, 8, 9):
            out.append(
                {
                    "name": f"default-{name}-seed{seed}",
                    "profile": "default",
                    "seed": seed,
                    "params": overrides,
                    "optional": True,
                }
            )
    return out[:2] if dry_run else out


def recipe_params(params: dict[str, Any], recipe: dict[str, Any], dry_run: bool) -> dict[str, Any]:
    tp = profile_params(params, recipe["profile"])
    if "seed" in recipe:
        tp["seed"] = recipe["seed"]
    tp |= recipe.get("params", {})
    if dry_run:  # a few steps of the tiny model on the CPU: exercises every line, measures nothing
        tp |= {"max_steps": 2, "batch_size": 2, "eval_every": 1, "patience": 1}
        tp |= {"mixed_precision": "no", "checkpoint_every": 0, "train_examples": 8}
    return tp


def raft_examples(
    bundle: dict[str, Any], params: dict[str, Any], tp: dict[str, Any], recipe: dict[str, Any]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Training and early-stopping examples, sampled and built as flows/behaviour_steps does."""
    from tasks.raft import build_raft_examples

    raft = dict(params["training"]["raft"]) | recipe.get("raft", {})
    if tp["train_examples"] < raft["eval_held_out"]:  # dry run: a couple of held-out examples
        raft["eval_held_out"] = 2
    chunks = bundle["chunks"]
    rows = bundle["train"]
    rng = random.Random(tp["seed"])
    rows = rng.sample(rows, min(len(rows), tp["train_examples"] + raft["eval_held_out"]))
    hits = {r["question"]: [chunks[i] for i in r["hit_ids"]] for r in rows}
    gold = {str(r["id"]): chunks[r["gold_passage_id"]] for r in rows}
    examples = build_raft_examples(
        rows,
        {},
        lambda q: hits[q],
        int(raft["distractors"]),
        float(raft["oracle_missing_fraction"]),
        tp["seed"],
        gold=lambda item: gold[str(item["id"])],
    )
    held = raft["eval_held_out"] if len(examples) > raft["eval_held_out"] * 2 else 0
    training = examples[held:]
    random.Random(tp["seed"] + 1).shuffle(training)
    return training, examples[:held]


def heldout_items(bundle: dict[str, Any], params: dict[str, Any]) -> list[dict[str, Any]]:
    from tasks.grounding import oracle_passage
    from tasks.heldout import heldout_item

    chunks = bundle["chunks"]
    k = int(params["retrieval"]["top_k"])
    n = int(params["retrieval"]["context_passages"])
    items = []
    for row in bundle["eval"]:
        item = heldout_item(
            {key: v for key, v in row.items() if key not in ("hit_ids",)},
            [chunks[i] for i in row["hit_ids"]],
            chunks[row["gold_passage_id"]],
            n,
            k,
            params["training"]["seed"],
        )
        doc = bundle["documents"][item["oracle_id"]] | {"id": item["oracle_id"]}
        item["oracle_window"] = [oracle_passage(doc, row["answer"], WINDOW_WORDS)]
        items.append(item)
    return items


def gold_in_retrieved(item: dict[str, Any]) -> bool:
    return item["oracle_id"] in {p["passage_id"].split("#")[0] for p in item["retrieved"]}


def answer_all(generator, system: str, questions, contexts, max_new_tokens: int, batch: int):
    """Raw first-line replies, in batches of similar prompt length (less padding)."""
    return generator.answer_many(
        system, questions, contexts, max_new_tokens, raw=True, batch_size=batch
    )


def score(
    generator,
    params: dict[str, Any],
    items,
    max_new_tokens: int,
    batch: int,
    conditions: tuple[str, ...] = CONDITIONS,
):
    """Per-question replies and scores in every condition asked for."""
    from tasks.evaluation import exact_match, token_f1
    from tasks.gate import format_ok
    from tasks.raft import is_refusal, split_citation

    system = " ".join(params["training"]["system_prompt"].split())
    closed = " ".join(params["answer"]["closed_book_prompt"].split())
    questions = [i["question"] for i in items]
    out: dict[str, dict[str, list]] = {}
    for condition in conditions:
        contexts = [[] if condition == "closed_book" else i[condition] for i in items]
        prompt = closed if condition == "closed_book" else system
        replies = answer_all(generator, prompt, questions, contexts, max_new_tokens, batch)
        texts = [split_citation(r)[0] for r in replies]
        out[condition] = {
            "reply": replies,
            "f1": [token_f1(t, i["answer"]) for t, i in zip(texts, items, strict=True)],
            "em": [exact_match(t, i["answer"]) for t, i in zip(texts, items, strict=True)],
            "refusal": [float(is_refusal(r)) for r in replies],
            "format_ok": [float(format_ok(r)) for r in replies],
        }
    return out


def run(args: argparse.Namespace) -> None:
    import torch
    from accelerate.state import AcceleratorState

    from tasks.generation import load_generator
    from tasks.raft import encode_raft_examples
    from tasks.training import load_tokenizer, train_lora

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    if device == "cpu":  # a dry run beside other work: one thread is faster than contention
        torch.set_num_threads(int(os.environ.get("DUALENGINE_TORCH_THREADS") or 1))
    log(f"device {device}; torch {torch.__version__}")
    if args.gguf:
        from dualengine.conversion import convert_gguf

        base = str(convert_gguf(Path(args.gguf), Path(args.work) / "smollm2"))
        log(f"converted {args.gguf} → {base}")
    else:
        base = args.base_model
    params = load_params()
    with gzip.open(Path(args.carry) / "bundle.json.gz", "rt", encoding="utf-8") as handle:
        bundle = json.load(handle)
    items = heldout_items(bundle, params)
    if args.questions:
        items = items[: args.questions]
    recall3 = sum(gold_in_retrieved(i) for i in items)
    log(f"{len(items)} held-out questions; gold document in the retrieved context: {recall3}")
    tokenizer = load_tokenizer(base)
    results: dict[str, Any] = {
        "meta": {
            "device": device,
            "torch": torch.__version__,
            "base_model": args.gguf or base,
            "dry_run": args.dry_run,
            "questions": len(items),
            "max_new_tokens": args.max_new_tokens,
            "bundle": bundle["meta"],
            "window_words": WINDOW_WORDS,
        },
        "items": [
            {
                "id": i.get("id"),
                "question": i["question"],
                "answer": i["answer"],
                "recall": i["recall"],
                "gold_in_retrieved": float(gold_in_retrieved(i)),
            }
            for i in items
        ],
        "recipes": {},
    }
    durations: list[float] = []
    only = {n for n in (args.only or "").split(",") if n}
    extra = [
        {"name": f"adapter-{Path(path).name}", "profile": None, "adapter": path}
        for path in args.score_adapter or []
    ]
    for recipe in recipes(args.dry_run) + extra:
        if only and recipe["name"] not in only and "adapter" not in recipe:
            continue
        elapsed = time.perf_counter() - STARTED
        estimate = max(durations) if durations else 0.0
        if recipe.get("optional") and elapsed + estimate > args.budget_s:
            log(f"skip {recipe['name']}: {elapsed:.0f} s + ~{estimate:.0f} s > {args.budget_s} s")
            continue
        began = time.perf_counter()
        meta: dict[str, Any] = {"recipe": recipe}
        adapter = recipe.get("adapter")
        if recipe["profile"]:
            tp = recipe_params(params, recipe, args.dry_run)
            train, held = raft_examples(bundle, params, tp, recipe)
            length = answer_length(tp)
            encoded, dropped = encode_raft_examples(tokenizer, tp["system_prompt"], train, length)
            held_encoded, held_dropped = encode_raft_examples(
                tokenizer, tp["system_prompt"], held, length
            )
            adapter = Path(args.work) / f"adapter-{recipe['name']}"
            log(
                f"{recipe['name']}: training on {len(encoded)} examples "
                f"({len(dropped)} dropped: whole prompt over {length} tokens), "
                f"{len(held_encoded)} for early stopping; lr {tp['learning_rate']}, "
                f"max_steps {tp['max_steps']}, seed {tp['seed']}"
            )
            # one process trains several recipes: the next may use another mixed precision
            AcceleratorState._reset_state()
            result = train_lora(base, encoded, tp, adapter, eval_examples=held_encoded or None)
            meta |= {
                "params": {k: v for k, v in tp.items() if k != "system_prompt"},
                "train_examples": len(encoded),
                "dropped_examples": len(dropped) + len(held_dropped),
                "refusal_targets": sum(1 for e in train if not e["oracle_included"]),
                "steps": result.steps,
                "stopped_early": result.stopped_early,
                "first_loss": result.losses[0] if result.losses else None,
                "final_loss": result.final_loss,
                "eval_losses": result.eval_losses,
                "train_seconds": round(result.seconds, 1),
                "tokens_per_second": round(result.tokens_per_second, 1),
            }
            log(
                f"{recipe['name']}: {result.steps} steps in {result.seconds:.1f} s "
                f"(early stop {result.stopped_early}), loss {meta['first_loss']:.3f} → "
                f"{result.final_loss:.3f}"
            )
        generator = load_generator(
            base, str(adapter) if adapter else None, args.context_length, args.quantize
        )
        conditions = tuple(args.conditions.split(",")) if args.conditions else CONDITIONS
        scores = score(generator, params, items, args.max_new_tokens, args.batch, conditions)
        del generator
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        meta["seconds"] = round(time.perf_counter() - began, 1)
        durations.append(meta["seconds"])
        results["recipes"][recipe["name"]] = {"meta": meta, "scores": scores}
        means = {c: sum(scores[c]["f1"]) / max(1, len(items)) for c in conditions}
        refusal = (
            f"; refusal when missing {sum(scores['missing']['refusal']) / max(1, len(items)):.3f}"
            if "missing" in scores
            else ""
        )
        log(
            f"{recipe['name']}: F1 "
            + ", ".join(f"{c} {v:.3f}" for c, v in means.items())
            + f"{refusal} ({meta['seconds']:.0f} s)"
        )
        write_outputs(out, results)
    log("done")
    write_outputs(out, results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare", help="CPU: chunks, retrieval and the gguf wheel → carry folder")
    p.add_argument("--carry", default=str(ROOT / ".gpu_carry"))
    p.add_argument("--depth", type=int, default=10, help="retrieved chunks kept per question")
    p.add_argument("--limit-eval", type=int, default=0, help="first N held-out questions only")
    p.add_argument("--limit-train", type=int, default=0, help="N sampled training questions")
    p.add_argument("--no-wheel", dest="wheel", action="store_false")
    r = sub.add_parser("run", help="GPU (or CPU dry run): train recipes, score held-out questions")
    r.add_argument("--carry", default=str(ROOT / ".gpu_carry"))
    group = r.add_mutually_exclusive_group(required=True)
    group.add_argument("--gguf", help="SmolLM2 GGUF file, converted like dualengine.models")
    group.add_argument("--base-model", help="a Hugging Face model folder (e.g. the tiny model)")
    r.add_argument("--out", required=True)
    r.add_argument("--work", default="/tmp/gpu_quality")
    r.add_argument("--questions", type=int, default=0, help="first N held-out questions only")
    r.add_argument("--max-new-tokens", type=int, default=24)
    r.add_argument("--context-length", type=int, default=1024)
    r.add_argument("--batch", type=int, default=64)
    r.add_argument("--budget-s", type=float, default=330.0)
    r.add_argument("--dry-run", action="store_true", help="2 steps, 3 recipes (CPU check)")
    r.add_argument("--only", help="comma-separated recipe names (default: every recipe)")
    r.add_argument(
        "--conditions", help=f"comma-separated, of {', '.join(CONDITIONS)} (default: every one)"
    )
    r.add_argument(
        "--score-adapter",
        action="append",
        help="also score this trained adapter folder (repeatable; e.g. a registered version's)",
    )
    r.add_argument(
        "--quantize", default="none", help="inference.quantize for answering (none on a GPU)"
    )
    s = sub.add_parser("report", help="CPU: BCa table from a results.json")
    s.add_argument("results")
    s.add_argument("--out")
    args = parser.parse_args()
    {"prepare": prepare, "run": run, "report": report}[args.command](args)


if __name__ == "__main__":
    main()
