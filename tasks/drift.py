"""Drift statistics and signal statuses for the monitors (pure numpy; no services).

Embedding drift is a two-sample test: the squared maximum mean discrepancy (MMD²) between the
reference embeddings (training questions) and the current ones (logged queries) under an RBF
kernel with the median-distance bandwidth, with a permutation p-value. Both samples are capped
(random subsamples) so the test costs the same for 100 or 100,000 logged queries.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

OK, WARN, DEGRADED, INSUFFICIENT = "ok", "warn", "degraded", "insufficient-data"


@dataclass
class Signal:
    """One monitored quantity with its thresholds and status."""

    engine: str  # knowledge | behaviour
    name: str
    value: float | None
    status: str
    warn: float | None = None
    degraded: float | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def classify(
    value: float | None, warn: float, degraded: float, higher_is_worse: bool = True
) -> str:
    """ok / warn / degraded against two thresholds (None → insufficient data)."""
    if value is None or value != value:  # None or NaN
        return INSUFFICIENT
    if not higher_is_worse:
        value, warn, degraded = -value, -warn, -degraded
    if value >= degraded:
        return DEGRADED
    if value >= warn:
        return WARN
    return OK


def _subsample(x: np.ndarray, cap: int, rng: np.random.Generator) -> np.ndarray:
    if len(x) <= cap:
        return x
    return x[rng.choice(len(x), cap, replace=False)]


def mmd_permutation_test(
    reference: np.ndarray,
    current: np.ndarray,
    permutations: int = 200,
    cap: int = 400,
    seed: int = 0,
) -> dict[str, float]:
    """MMD² (biased estimator, RBF kernel, median heuristic) and its permutation p-value."""
    rng = np.random.default_rng(seed)
    x = _subsample(np.asarray(reference, dtype=np.float64), cap, rng)
    y = _subsample(np.asarray(current, dtype=np.float64), cap, rng)
    z = np.concatenate([x, y])
    squared = np.maximum((z * z).sum(1)[:, None] + (z * z).sum(1)[None, :] - 2.0 * z @ z.T, 0.0)
    median = np.median(squared[np.triu_indices(len(z), k=1)])
    kernel = np.exp(-squared / (median if median > 0 else 1.0))
    n, m = len(x), len(y)
    # MMD² = wᵀKw with w = (1/n … 1/n, −1/m … −1/m); a permutation permutes w, so every
    # permuted statistic comes from one matrix product
    w = np.concatenate([np.full(n, 1.0 / n), np.full(m, -1.0 / m)])
    weights = np.stack([w] + [w[rng.permutation(n + m)] for _ in range(permutations)], axis=1)
    stats = np.einsum("ip,ip->p", weights, kernel @ weights)
    observed = float(stats[0])
    exceed = int((stats[1:] >= observed).sum())
    return {
        "mmd2": observed,
        "p_value": (exceed + 1) / (permutations + 1),
        "reference_n": float(len(x)),
        "current_n": float(len(y)),
    }
