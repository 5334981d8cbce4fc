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
        if "missing" in s:
            row["refusal_when_missing"] = bootstrap_ci(s["missing"]["refusal"], seed, n_boot)
        row["false_refusal_retrieved"] = bootstrap_ci(s["retrieved"]["refusal"], seed, n_boot)
        if "semantic" in s.get("retrieved", {}):
            row["retrieved_semantic"] = bootstrap_ci(s["retrieved"]["semantic"], seed, n_boot)
        row["meta"] = {
            k: v for k, v in data["meta"].items() if k not in ("params", "eval_losses", "recipe")
        }
        summary["recipes"][name] = row
        if base is not None and name != "base":
            pairs = {
                "ft_rag_minus_rag_only": (s["retrieved"], base["scores"]["retrieved"]),
                "ft_rag_minus_ft_only": (s["retrieved"], s.get("closed_book")),
                "oracle_minus_retrieved": (s.get("oracle"), s["retrieved"]),
            }
            summary["gaps"][name] = {
                key: paired_difference(a["f1"], b["f1"], seed, n_boot)
                for key, (a, b) in pairs.items()
                if a is not None and b is not None
            }
    summary["seed_spread"] = seed_spread(summary["recipes"])
    return summary


def seed_spread(rows: dict[str, Any]) -> dict[str, Any]:
    """Retrieved F1 over the seeds of each recipe family (names ending `-seedN`)."""
    families: dict[str, list[float]] = {}
    for name, row in rows.items():
        family, _, seed = name.rpartition("-seed")
        if family and seed.isdigit() and "retrieved_f1" in row:
            families.setdefault(family, []).append(row["retrieved_f1"]["mean"])
    out = {}
    for family, values in families.items():
        if len(values) > 1:
            mean = sum(values) / len(values)
            sd = (sum((x - mean) ** 2 for x in values) / (len(values) - 1)) ** 0.5
            out[family] = {"values": values, "mean": mean, "sd": sd}
    return out


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
    for family, spread in summary.get("seed_spread", {}).items():
        lines += [
            "",
            f"`{family}`, {len(spread['values'])} seeds: retrieved F1 "
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
