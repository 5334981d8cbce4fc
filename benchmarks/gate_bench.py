"""Promotion gate wall time, before (7e717f1) vs now, on the same held-out questions in one run.

    .venv/bin/python benchmarks/gate_bench.py --adapter ADAPTER_DIR \
        [--carry .gpu_carry] [--questions 80] [--base-model PATH] [--threads N] [--out FILE]

Items come from gpu_quality's no-services bundle (`gpu_quality.py prepare` writes
`.gpu_carry/bundle.json.gz`; `heldout_items` gives each question its `retrieved`, `oracle` and
`missing` contexts, as the gate builds them). Both paths score the challenger (base model +
`--adapter`) and the base model:

- before: 7e717f1's scoring (benchmarks/gate_before.py): fp32, batches of 8 in file order,
  three greedy passes and a separate full-vocabulary NLL pass; the base model scored on every
  promotion;
- now: `tasks.gate.score_model` with `tasks.generation.load_generator` in the precision
  `Settings().quantize()` resolves (length-sorted `answer_many`, oracle answer and NLL from one
  prefill); the first promotion scores challenger + base, every later one only the challenger
  (base scores from tasks/score_cache.py; reading that MLflow artifact is not timed here).

After an untimed warm-up (imports, first generate), the paths run interleaved (before
challenger, now challenger, now base, before base) so a load change on the shared machine hits
both. Each timing includes the model load, as in the gate.
`decide_promotion` (today's, the `default` profile's metric, margin and guardrails) is run on
both sets of scores; the decisions should agree. A champion, when there is one, adds one more
challenger-like scoring to both paths. Load averages are recorded before and after.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def load_items(carry: Path, questions: int, params: dict[str, Any]) -> list[dict[str, Any]]:
    """The first `questions` held-out items of the carried bundle, built like gpu_quality."""
    from gpu_quality import heldout_items  # a sibling script (benchmarks/ is on sys.path)

    with gzip.open(carry / "bundle.json.gz", "rt", encoding="utf-8") as handle:
        bundle = json.load(handle)
    if questions:
        bundle["eval"] = bundle["eval"][:questions]
    return heldout_items(bundle, params)


def decision_summary(decision) -> dict[str, Any]:
    """What the gate would do with these scores: promote, why, the metric's paired gain."""
    return {
        "promote": decision.promote,
        "reason": decision.reason,
        "comparisons": {
            k: {m: round(v, 4) for m, v in c.items()} for k, c in decision.comparisons.items()
        },
    }


def warm_up(base: str, adapter: str) -> float:
    """Untimed by the comparison: the imports and first-call costs of loading a model with an
    adapter and generating, which whichever path ran first would otherwise pay alone."""
    import torch

    from benchmarks.gate_before import load_before

    started = time.perf_counter()
    generator = load_before(base, adapter, 64).generator
    ids = torch.tensor([[generator.tokenizer.eos_token_id or 0] * 4])
    with torch.inference_mode():
        generator.model.generate(input_ids=ids, max_new_tokens=2, do_sample=False)
    return time.perf_counter() - started


def means(scores) -> dict[str, float]:
    return {m: round(scores.mean(m), 4) for m in scores.per_question}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--adapter", required=True, help="the challenger's LoRA adapter folder")
    parser.add_argument("--carry", default=str(ROOT / ".gpu_carry"))
    parser.add_argument("--questions", type=int, default=0, help="default: eval_examples")
    parser.add_argument("--base-model", help="default: the `default` profile's (SmolLM2)")
    parser.add_argument("--threads", type=int, default=0, help="default: Settings().threads()")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "gate.json"))
    args = parser.parse_args()

    if not (Path(args.adapter) / "adapter_config.json").is_file():
        raise SystemExit(f"{args.adapter}: not a LoRA adapter folder (no adapter_config.json)")
    import torch

    from benchmarks.gate_before import load_before
    from dualengine.models import base_model_path
    from dualengine.settings import Settings
    from tasks.gate import decide_promotion, score_model
    from tasks.generation import load_generator
    from tasks.hardware import configure_threads

    load_before_run = os.getloadavg()
    settings = Settings(profile="default")
    profile = settings.training_profile()
    reg = settings.config().registry
    threads = args.threads or settings.threads()
    configure_threads(threads)
    base = args.base_model or base_model_path(settings)
    quantize = settings.quantize()
    system, new, length = profile.system_prompt, profile.max_new_tokens, profile.context_tokens
    items = load_items(Path(args.carry), args.questions or profile.eval_examples, settings.params())
    if not items:
        raise SystemExit(f"{args.carry}/bundle.json.gz: no held-out questions")
    contexts = [[i[k] for i in items] for k in ("retrieved", "oracle", "missing")]

    loaders = {
        "before": lambda adapter: load_before(base, adapter, length),
        "now": lambda adapter: load_generator(base, adapter, length, quantize),
    }

    warm = warm_up(base, args.adapter)
    scores, seconds = {}, {}
    for path, label, adapter in (
        ("before", "challenger", args.adapter),
        ("now", "challenger", args.adapter),
        ("now", "base", None),
        ("before", "base", None),
    ):
        key = f"{path}_{label}"
        started = time.perf_counter()
        generator = loaders[path](adapter)
        scores[key] = score_model(label, None, generator, system, items, *contexts, new)
        del generator
        seconds[key] = time.perf_counter() - started
        print(f"{key}: {seconds[key]:.1f} s", flush=True)

    gate = (profile.gate_metric, reg.gate_margin, reg.guardrail_tolerance, profile.seed)
    rules = (*gate, reg.bootstrap_samples, tuple(reg.guardrails))
    decisions = {
        path: decision_summary(
            decide_promotion(scores[f"{path}_challenger"], [scores[f"{path}_base"]], *rules)
        )
        for path in ("before", "now")
    }
    walls = {
        "before": seconds["before_challenger"] + seconds["before_base"],
        "now_first_promotion": seconds["now_challenger"] + seconds["now_base"],
        "now_cached_base": seconds["now_challenger"],
    }
    result = {
        "when": time.strftime("%Y-%m-%d %H:%M"),
        "machine": f"{os.cpu_count()} cores",
        "torch_threads": torch.get_num_threads(),
        "load_before": [round(x, 2) for x in load_before_run],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "base_model": base,
        "adapter": args.adapter,
        "questions": len(items),
        "max_new_tokens": new,
        "context_length": length,
        "precision": {"before": "fp32", "now": quantize},
        "warm_up_s": round(warm, 2),
        "seconds": {k: round(v, 2) for k, v in seconds.items()},
        "wall_s": {k: round(v, 2) for k, v in walls.items()},
        "ratio": {
            "before_over_now_first_promotion": round(
                walls["before"] / walls["now_first_promotion"], 3
            ),
            "before_over_now_cached_base": round(walls["before"] / walls["now_cached_base"], 3),
        },
        "decision": decisions,
        "decisions_agree": decisions["before"]["promote"] == decisions["now"]["promote"],
        "means": {k: means(v) for k, v in scores.items()},
        "gate": {
            "metric": profile.gate_metric,
            "margin": reg.gate_margin,
            "guardrail_tolerance": reg.guardrail_tolerance,
            "bootstrap_samples": reg.bootstrap_samples,
        },
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
