"""The statistics behind every claim: exact intervals, the seed-and-point bootstrap, exact McNemar, Holm.

A claim's evidence is an :class:`Evidence`: an estimate pooled over the training seeds, its 95% interval, a
raw two-sided p-value, the smallest p-value the design could ever give (a design that cannot go below the
level is *not testable*) and the per-seed estimates.  Guarantees: every function is deterministic given its
``seed`` argument, and with one training seed the bootstrap reduces to the paired bootstrap over test points.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = ["Evidence", "proportion_interval", "bootstrap_interval", "mcnemar_pvalue", "mcnemar_min_pvalue",
           "pooled_bootstrap", "paired_difference", "holm"]

PointStatistic = Callable[[np.ndarray], np.ndarray]
"""Maps point indices of shape [resamples, n] to one value per resample (row 0 may be ``arange(n)``)."""


@dataclass(frozen=True)
class Evidence:
    """What one test says: estimate, interval, raw p-value, smallest attainable p-value, per-seed estimates."""

    estimate: float
    interval: tuple[float, float]
    pvalue: float
    min_pvalue: float = 0.0
    seeds: tuple[float, ...] = field(default_factory=tuple)
    test: str = "paired bootstrap"
    """How the p-value was computed (shown in the reason)."""


def proportion_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper-Pearson) two-sided interval for a binomial proportion; covers p with prob. >= confidence."""
    from scipy import stats

    if n <= 0:
        return (math.nan, math.nan)
    ci = stats.binomtest(int(k), int(n)).proportion_ci(confidence_level=confidence, method="exact")
    return float(ci.low), float(ci.high)


def bootstrap_interval(statistic: PointStatistic, n: int, seed: int, resamples: int = 2000,
                       confidence: float = 0.95) -> tuple[float, float]:
    """Percentile interval of ``statistic`` over ``resamples`` paired bootstrap resamples of the n points.

    ``statistic`` receives an int array of shape [resamples, n] (row j: the point indices of resample j,
    drawn with replacement) and returns the [resamples] values; every classifier's outcomes are indexed by
    the same rows, which keeps the pairing.  Seeded: the same inputs give the same interval.
    """
    return pooled_bootstrap([statistic], n, seed, resamples, confidence).interval


def mcnemar_pvalue(a: np.ndarray, b: np.ndarray) -> float:
    """Exact two-sided McNemar p-value for paired 0/1 outcomes: binomial test on the discordant pairs."""
    from scipy import stats

    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(~a & b))
    if only_a + only_b == 0:
        return 1.0
    return float(stats.binomtest(only_a, only_a + only_b, 0.5).pvalue)


def mcnemar_min_pvalue(capacity: int) -> float:
    """The smallest two-sided exact McNemar p-value when at most ``capacity`` pairs can be discordant.

    It is reached when all of them are discordant one way: ``min(1, 2 · 2^-capacity)``.  A design whose
    capacity gives a value at or above the level cannot reject, whatever the outcomes.
    """
    return min(1.0, 2.0 * 0.5 ** max(int(capacity), 0))


def _normal_pvalue(estimate: float, values: np.ndarray) -> float:
    """Two-sided p-value of ``estimate`` = 0 from the bootstrap standard error (a Wald test)."""
    from scipy import stats

    se = float(np.std(values, ddof=1)) if values.size > 1 else 0.0
    if se <= 0:
        return 1.0 if estimate == 0 else 0.0
    return float(2 * stats.norm.sf(abs(estimate) / se))


def pooled_bootstrap(per_seed: Sequence[PointStatistic], n: int, seed: int, resamples: int = 2000,
                     confidence: float = 0.95) -> Evidence:
    """A statistic pooled over training seeds: the mean of each seed's statistic on the same test points.

    Each resample draws the test points with replacement (the same points for every seed: the seeds share the
    test split) and, with more than one seed, the seeds with replacement, so the interval carries both the
    point-to-point and the seed-to-seed variation.  The p-value is the Wald test from the bootstrap standard
    error.  With one seed this is the paired bootstrap over the test points.
    """
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(resamples, n))
    full = np.arange(n)[None, :]
    seeds = tuple(float(np.asarray(stat(full), dtype=np.float64)[0]) for stat in per_seed)
    estimate = float(np.mean(seeds)) if seeds else math.nan
    values = np.stack([np.asarray(stat(idx), dtype=np.float64) for stat in per_seed])  # [S, R]
    if len(per_seed) > 1:
        draws = rng.integers(0, len(per_seed), size=(resamples, len(per_seed)))
        values = values[draws, np.arange(resamples)[:, None]].mean(axis=1)
    else:
        values = values[0]
    values = values[np.isfinite(values)]
    if values.size == 0 or not np.isfinite(estimate):
        return Evidence(math.nan, (math.nan, math.nan), math.nan, 1.0, seeds)
    tail = (1.0 - confidence) / 2.0
    interval = (float(np.quantile(values, tail)), float(np.quantile(values, 1.0 - tail)))
    degenerate = np.ptp(values) == 0 and estimate == 0
    return Evidence(estimate, interval, _normal_pvalue(estimate, values), 1.0 if degenerate else 0.0, seeds,
                    "bootstrap over " + ("seeds and " if len(per_seed) > 1 else "") + "test points")


def paired_difference(pairs: Sequence[tuple[np.ndarray, np.ndarray]], seed: int, resamples: int = 2000,
                      confidence: float = 0.95, capacity: int | None = None) -> Evidence:
    """mean(a) − mean(b) on the same points, one (a, b) pair per training seed, pooled over the seeds.

    With one seed and 0/1 outcomes the p-value is the exact McNemar test; its smallest attainable value is
    taken from ``capacity`` (how many points could differ at all; default: every point).  Otherwise the
    p-value is the bootstrap's Wald test.
    """
    diffs = [np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64) for a, b in pairs]
    n = min(len(d) for d in diffs)
    ev = pooled_bootstrap([lambda idx, d=d[:n]: d[idx].mean(axis=1) for d in diffs], n, seed, resamples, confidence)
    binary = all(np.isin(a, (0, 1)).all() and np.isin(b, (0, 1)).all() for a, b in pairs)
    cap = n if capacity is None else capacity
    if binary and len(pairs) == 1:
        a, b = pairs[0]
        return Evidence(ev.estimate, ev.interval, mcnemar_pvalue(a, b), mcnemar_min_pvalue(cap), ev.seeds,
                        "exact McNemar")
    return Evidence(ev.estimate, ev.interval, ev.pvalue, max(ev.min_pvalue, mcnemar_min_pvalue(cap) if binary
                                                             else 0.0), ev.seeds, ev.test)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (Holm 1979); NaN entries are not part of the family and stay NaN.

    Sorted ascending, ``p_(i)`` becomes ``max_{j ≤ i} min(1, (m − j + 1) · p_(j))``.  Rejecting where the
    adjusted value is below α controls the family-wise error rate at α.
    """
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(p.shape, math.nan)
    family = np.flatnonzero(np.isfinite(p))
    m = len(family)
    order = family[np.argsort(p[family], kind="stable")]
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out.tolist()
