"""Exact (Clopper-Pearson) one-sided binomial confidence bounds, via ``scipy.stats.beta``, and the certified
accuracy of per-sample certificates.

Kept free of torch, and scipy is imported on first use, so that checking a config (which sizes sample
budgets with these bounds) and drawing the certificate figures from records stay fast; perfect runs
(k = n) have the closed form alpha**(1/n).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["ABSTAIN", "certified_accuracy", "cp_lower", "cp_upper", "min_samples_for_radius",
           "perfect_run_lower"]

ABSTAIN: int = -1
"""The prediction of a certificate that abstains."""

ArrayLike = int | float | np.ndarray


def _check(k: np.ndarray, n: np.ndarray, alpha: float) -> None:
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    if np.any(n < 1) or np.any(k < 0) or np.any(k > n):
        raise ValueError("need n >= 1 and 0 <= k <= n")


def _out(value: np.ndarray) -> float | np.ndarray:
    return float(value) if value.ndim == 0 else value


def cp_lower(k: ArrayLike, n: ArrayLike, alpha: float) -> float | np.ndarray:
    """One-sided (1 - alpha) Clopper-Pearson lower bound on a binomial proportion.

    Guarantee: if k ~ Binomial(n, p), then P(cp_lower(k, n, alpha) <= p) >= 1 - alpha for every p.
    Equals ``beta.ppf(alpha, k, n - k + 1)`` and 0 when k = 0.  Vectorised over numpy arrays
    (scalars in, float out).
    """
    k_arr = np.asarray(k, dtype=np.float64)
    n_arr = np.asarray(n, dtype=np.float64)
    _check(k_arr, n_arr, alpha)
    perfect = k_arr == n_arr
    if np.all(perfect):
        return _out(np.asarray(perfect_run_lower(n_arr, alpha)))
    from scipy import stats

    pos = k_arr > 0
    val = stats.beta.ppf(alpha, np.where(pos, k_arr, 1.0), n_arr - k_arr + 1.0)
    return _out(np.where(perfect, perfect_run_lower(n_arr, alpha), np.where(pos, val, 0.0)))


def perfect_run_lower(n: ArrayLike, alpha: float) -> float | np.ndarray:
    """``cp_lower(n, n, alpha)`` in closed form: ``alpha**(1/n)`` (the Beta(n, 1) quantile), no scipy."""
    return np.power(alpha, 1.0 / np.asarray(n, dtype=np.float64))


def cp_upper(k: ArrayLike, n: ArrayLike, alpha: float) -> float | np.ndarray:
    """One-sided (1 - alpha) Clopper-Pearson upper bound on a binomial proportion.

    Guarantee: if k ~ Binomial(n, p), then P(cp_upper(k, n, alpha) >= p) >= 1 - alpha for every p.
    Equals ``beta.ppf(1 - alpha, k + 1, n - k)`` and 1 when k = n.  Vectorised over numpy arrays.
    """
    k_arr = np.asarray(k, dtype=np.float64)
    n_arr = np.asarray(n, dtype=np.float64)
    _check(k_arr, n_arr, alpha)
    from scipy import stats

    below = k_arr < n_arr
    val = stats.beta.ppf(1.0 - alpha, k_arr + 1.0, np.where(below, n_arr - k_arr, 1.0))
    return _out(np.where(below, val, 1.0))


def min_samples_for_radius(alpha: float) -> int:
    """Smallest n for which a perfect run (k = n) gives a positive Cohen radius.

    That is the smallest n with cp_lower(n, n, alpha) = alpha**(1/n) > 1/2, i.e. n > log2(1/alpha).
    With fewer samples CERTIFY abstains (or returns radius 0) on every input, whatever the model.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    n = max(1, math.floor(math.log2(1.0 / alpha)) + 1)
    # guard against floating-point rounding of the closed form
    while cp_lower(n, n, alpha) <= 0.5:
        n += 1
    while n > 1 and cp_lower(n - 1, n - 1, alpha) > 0.5:
        n -= 1
    return n


def certified_accuracy(
    predictions: np.ndarray, labels: np.ndarray, radii: np.ndarray, radius: float
) -> float:
    """Fraction of points certified correct at ``radius``: prediction == label (not ABSTAIN) and
    certified radius ≥ ``radius`` (Cohen et al.'s definition; at radius 0 every correct, non-abstained
    point counts)."""
    predictions = np.asarray(predictions)
    ok = (predictions != ABSTAIN) & (predictions == np.asarray(labels)) & (np.asarray(radii) >= radius)
    return float(ok.mean()) if ok.size else float("nan")
