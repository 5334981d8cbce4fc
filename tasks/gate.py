"""The promotion gate: base vs champion vs challenger on held-out questions, with BCa intervals.

Each model answers every held-out question twice, with the retrieved passages and with the
oracle context (the gold chunk shuffled among retrieved chunks of other documents, the
training shape; tasks.heldout); it is scored by token-F1 and exact match, by the NLL of the
gold answer given the oracle context, and on two guardrails: answer format (one short line)
and refusal when the context lacks the answer (retrieved chunks of other documents only).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from tasks.evaluation import exact_match, token_f1
from tasks.heldout import reuse_same_contexts, same_context
from tasks.progress import progress
from tasks.raft import is_refusal, split_citation

HIGHER_IS_BETTER = {
    "f1_retrieved": True,
    "em_retrieved": True,
    "f1_oracle": True,
    "em_oracle": True,
    "nll": False,
}
GUARDRAILS = ("format_ok", "refusal_when_missing")


@dataclass
class ModelScores:
    """Per-question scores of one model (lists, so they can be bootstrapped)."""

    name: str
    version: str | None
    per_question: dict[str, list[float]] = field(default_factory=dict)

    def mean(self, metric: str) -> float:
        values = self.per_question[metric]
        return sum(values) / len(values) if values else 0.0

    def summary(self, seed: int, n_boot: int) -> dict[str, dict[str, float]]:
        return {m: bootstrap_ci(v, seed, n_boot) for m, v in self.per_question.items()}


def bootstrap_ci(
    values: list[float], seed: int, n_boot: int = 1000, level: float = 0.95
) -> dict[str, float]:
    """Mean and BCa bootstrap interval (`scipy.stats.bootstrap`); all-equal values give the
    point itself as interval."""
    return _bca([values], lambda x, axis: x.mean(axis=axis), seed, n_boot, level)


def interval(ci: Mapping[str, float], signed: bool = False, digits: int = 3) -> str:
    """A bootstrap result as `mean [low, high]` (signed: `+0.120 [+0.010, +0.230]`, for gains)."""
    spec = f"{'+' if signed else ''}.{digits}f"
    return f"{ci['mean']:{spec}} [{ci['low']:{spec}}, {ci['high']:{spec}}]"


def row_interval(row: Mapping[str, float], metric: str) -> str:
    """`mean [low, high]` of a table row holding `metric`, `metric_low` and `metric_high`."""
    return interval(
        {"mean": row[metric], "low": row[f"{metric}_low"], "high": row[f"{metric}_high"]}
    )


def paired_difference(
    a: list[float], b: list[float], seed: int, n_boot: int = 1000, level: float = 0.95
) -> dict[str, float]:
    """Paired BCa bootstrap interval of mean(a - b) over the same questions (the questions are
    resampled together, `paired=True`)."""
    if len(a) != len(b):
        raise ValueError(f"paired samples differ in length: {len(a)} vs {len(b)}")
    return _bca([a, b], lambda x, y, axis: (x - y).mean(axis=axis), seed, n_boot, level)


def _bca(samples: list[list[float]], statistic, seed: int, n_boot: int, level: float):
    import warnings

    import numpy as np
    from scipy.stats import bootstrap

    arrays = [np.asarray(s, dtype=float) for s in samples]
    if not len(arrays[0]):
        return {"mean": 0.0, "low": 0.0, "high": 0.0}
    point = float(statistic(*arrays, axis=-1))
    varying = arrays[0] - arrays[1] if len(arrays) == 2 else arrays[0]
    if len(varying) < 2 or float(np.ptp(varying)) == 0.0:
        return {"mean": point, "low": point, "high": point}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # BCa on few distinct values warns; NaN is handled below
        options = {
            "n_resamples": n_boot,
            "vectorized": True,
            "paired": len(arrays) == 2,
            "confidence_level": level,
            "method": "BCa",
        }
        try:
            result = bootstrap(tuple(arrays), statistic, rng=np.random.default_rng(seed), **options)
        except TypeError:  # scipy < 1.15 names it random_state
            result = bootstrap(
                tuple(arrays), statistic, random_state=np.random.default_rng(seed), **options
            )
    low, high = (float(x) for x in result.confidence_interval)
    if not (math.isfinite(low) and math.isfinite(high)):  # degenerate resamples: percentile
        dist = result.bootstrap_distribution
        tail = (1 - level) / 2 * 100
        low, high = (float(np.percentile(dist, q)) for q in (tail, 100 - tail))
    return {"mean": point, "low": min(low, point), "high": max(high, point)}


def format_ok(text: str, max_words: int = 30) -> bool:
    return bool(text.strip()) and "\n" not in text.strip() and len(text.split()) <= max_words


def score_model(
    name: str,
    version: str | None,
    generator,
    system: str,
    items: list[dict[str, Any]],
    retrieved: list[list[dict[str, Any]]],
    oracle: list[list[dict[str, Any]]],
    missing: list[list[dict[str, Any]]],
    max_new_tokens: int,
    batch_size: int = 8,
) -> ModelScores:
    """Answer with retrieved, oracle and oracle-less context; score every question. Where
    retrieval found the gold chunk the oracle prompt is the retrieved one, answered once."""
    from tasks.raft import grounded_target

    scores = ModelScores(name, version, {k: [] for k in (*HIGHER_IS_BETTER, *GUARDRAILS)})
    questions = [i["question"] for i in items]
    targets = [
        grounded_target(item["answer"], _gold_position(item, ctx))
        for item, ctx in zip(items, oracle, strict=True)
    ]
    fresh = sum(not same_context(r, o) for r, o in zip(retrieved, oracle, strict=True))
    with progress(f"gate: scoring {name}", 2 * len(items) + fresh, key=f"gate-{name}") as bar:

        def answer(contexts: list[list[dict[str, Any]]], rows: list[int]) -> list[str]:
            return generator.answer_many(
                system,
                [questions[r] for r in rows],
                [contexts[r] for r in rows],
                max_new_tokens,
                raw=True,
                batch_size=batch_size,
                on_batch=bar.advance,
            )

        # the oracle answer and the gold reply's NLL share one prefill per batch
        oracle_answers, scores.per_question["nll"] = generator.answer_with_nll(
            system,
            questions,
            oracle,
            targets,
            max_new_tokens,
            raw=True,
            batch_size=batch_size,
            on_batch=bar.advance,
        )
        answers = {
            "oracle": oracle_answers,
            "retrieved": reuse_same_contexts(
                retrieved, oracle, oracle_answers, lambda rows: answer(retrieved, rows)
            ),
            "missing": answer(missing, list(range(len(items)))),
        }
    for i, item in enumerate(items):
        for label in ("retrieved", "oracle"):
            text, _ = split_citation(answers[label][i])
            scores.per_question[f"f1_{label}"].append(token_f1(text, item["answer"]))
            scores.per_question[f"em_{label}"].append(exact_match(text, item["answer"]))
        scores.per_question["format_ok"].append(float(format_ok(answers["retrieved"][i])))
        scores.per_question["refusal_when_missing"].append(float(is_refusal(answers["missing"][i])))
    return scores


def _gold_position(item: dict[str, Any], passages: list[dict[str, Any]]) -> int:
    """1-based position of the gold chunk (else the first chunk of the gold document)."""
    ids = [str(p["passage_id"]) for p in passages]
    gold = str(item.get("gold_passage_id") or item["oracle_id"])
    if gold in ids:
        return 1 + ids.index(gold)
    docs = [i.split("#", 1)[0] for i in ids]
    return 1 + docs.index(item["oracle_id"]) if item["oracle_id"] in docs else 1


@dataclass
class GateDecision:
    promote: bool
    reason: str
    metric: str
    margin: float
    comparisons: dict[str, dict[str, float]]
    guardrails: dict[str, dict[str, float]]
    table: list[dict[str, Any]]
    gains: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def markdown(self, model: str, version: str, seed: int, base_scores: Mapping[str, Any]) -> str:
        """The gate's Prefect artifact: verdict, reasons, paired gains over every rival with
        their intervals, and the guardrails; `base_scores` says where the base model's
        scores came from (`from_cache`, `key`)."""
        verdict = "PROMOTED" if self.promote else "refused"
        source = "from the cache" if base_scores.get("from_cache") else "scored now"
        metrics = list(HIGHER_IS_BETTER)
        rows = [
            f"| {rival} | "
            + " | ".join(interval(g[m], signed=True) if m in g else "-" for m in metrics)
            + " |"
            for rival, g in self.gains.items()
        ]
        return "\n".join(
            [
                f"## Promotion gate for `{model}` v{version}: {verdict}",
                "",
                f"Metric `{self.metric}`, margin {self.margin}, training seed {seed} (one seed: "
                "the same recipe retrained differs by a few hundredths of F1, see "
                f"benchmarks/README.md). Base model scores: {source} "
                f"(key `{base_scores.get('key')}`).",
                "",
                "- " + self.reason.replace("; ", "\n- "),
                "",
                "Paired gains of the challenger, mean [95% paired BCa interval] (NLL: reduction):",
                "",
                "| rival | " + " | ".join(metrics) + " |",
                "|---|" + "---|" * len(metrics),
                *rows,
                "",
                "Guardrails:",
                "```json",
                json.dumps(self.guardrails, indent=2),
                "```",
            ]
        )


def decide_promotion(
    challenger: ModelScores,
    rivals: list[ModelScores],
    metric: str,
    margin: float,
    guardrail_tolerance: float,
    seed: int,
    n_boot: int = 1000,
    guardrails: tuple[str, ...] = GUARDRAILS,
) -> GateDecision:
    """Promote only if the challenger beats every rival by `margin` on `metric` (its paired
    bootstrap interval's lower bound above the margin) and no guardrail (higher is better)
    drops by more than the tolerance against any rival."""
    sign = 1.0 if HIGHER_IS_BETTER[metric] else -1.0
    comparisons, rail_report, reasons = {}, {}, []
    promote = True
    for rival in rivals:
        diff = paired_difference(
            [sign * v for v in challenger.per_question[metric]],
            [sign * v for v in rival.per_question[metric]],
            seed,
            n_boot,
        )
        comparisons[rival.name] = diff
        if diff["low"] <= margin:
            promote = False
            reasons.append(
                f"vs {rival.name}: {metric} gain {diff['mean']:+.4f} "
                f"(95% CI {diff['low']:+.4f}…{diff['high']:+.4f}) not above {margin}"
            )
        else:
            reasons.append(
                f"vs {rival.name}: {metric} gain {diff['mean']:+.4f} "
                f"(95% CI {diff['low']:+.4f}…{diff['high']:+.4f}) > {margin}"
            )
        for rail in guardrails:
            drop = rival.mean(rail) - challenger.mean(rail)
            rail_report[f"{rival.name}.{rail}"] = {
                "challenger": challenger.mean(rail),
                "rival": rival.mean(rail),
                "drop": drop,
            }
            if drop > guardrail_tolerance:
                promote = False
                reasons.append(f"guardrail {rail} regressed vs {rival.name} by {drop:.3f}")
    table = []
    for model in [challenger, *rivals]:
        row: dict[str, Any] = {"model": model.name, "version": model.version or "-"}
        for m, ci in model.summary(seed, n_boot).items():
            row[m] = interval(ci)
        table.append(row)
    # every metric's paired gain over every rival (sign: positive = challenger better)
    gains = {
        rival.name: {
            m: paired_difference(
                [(1.0 if up else -1.0) * v for v in challenger.per_question[m]],
                [(1.0 if up else -1.0) * v for v in rival.per_question[m]],
                seed,
                n_boot,
            )
            for m, up in HIGHER_IS_BETTER.items()
            if m in challenger.per_question and m in rival.per_question
        }
        for rival in rivals
    }
    return GateDecision(
        promote, "; ".join(reasons), metric, margin, comparisons, rail_report, table, gains
    )


def nll_from_logits(logits, labels) -> list[float]:
    """Mean negative log-likelihood per row over positions whose label is not -100."""
    import torch

    shifted = logits[:, :-1].float()
    target = labels[:, 1:]
    losses = torch.nn.functional.cross_entropy(
        shifted.reshape(-1, shifted.size(-1)),
        target.reshape(-1),
        ignore_index=-100,
        reduction="none",
    ).view(target.shape)
    mask = target.ne(-100)
    out = (losses * mask).sum(1) / mask.sum(1).clamp(min=1)
    return [float(x) if not math.isnan(float(x)) else 0.0 for x in out]
