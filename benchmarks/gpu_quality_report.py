"""gpu_quality outputs (both sides): the four files in $OUT, BCa intervals, the markdown table."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from gpu_quality_common import CONDITIONS, log_text


def write_outputs(out: Path, results: dict[str, Any]) -> None:
    """results.json (per question), summary.json, table.md, log.txt: four files in $OUT."""
    (out / "results.json").write_text(json.dumps(results, ensure_ascii=False))
    summary = summarise(results)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    (out / "table.md").write_text(markdown(summary, results["meta"]))
    (out / "log.txt").write_text(log_text())


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
