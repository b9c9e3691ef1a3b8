"""Closed forms for the robustness/accuracy trade-off model of Tsipras et al. (ICLR 2019).

The data distribution ``D(p, eta, d)`` of "Robustness may be at odds with accuracy" is

* ``y ~ Uniform{-1, +1}``;
* ``x_1 = +y`` with probability ``p`` and ``x_1 = -y`` with probability ``1 - p`` (``0.5 <= p <= 1``);
* ``x_2, ..., x_{d+1}`` i.i.d. ``N(eta * y, 1)``.

Inputs therefore have ``d + 1`` coordinates; index 0 of every weight vector / sample row is the
"robust" feature ``x_1`` and indices ``1..d`` are the "non-robust" Gaussian features.

Robust accuracy is always taken against the worst-case l_inf perturbation ``||delta||_inf <= eps``
applied to *all* ``d + 1`` coordinates, including ``x_1`` (the perturbation is continuous, so the
perturbed ``x_1`` need not stay in ``{-1, +1}``). For a linear classifier ``sign(w . x + b)`` the
worst case is ``delta = -eps * sign(w) * y``, which lowers the margin ``y (w . x + b)`` by exactly
``eps * ||w||_1``.

Tie convention used everywhere: a prediction is correct only if the margin ``y (w . x + b)`` is
strictly positive, i.e. ``sign(0)`` is counted as wrong for both labels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "averaging_accuracy",
    "averaging_weights",
    "bayes_accuracy",
    "bayes_weights",
    "check_bound",
    "default_eta",
    "empirical_linear_accuracy",
    "exact_accuracy_curve",
    "family_accuracy",
    "family_weights",
    "linear_accuracy",
    "robust_feature_accuracy",
    "sample_tsipras",
    "tradeoff_bound",
]


def _phi(z: float) -> float:
    """Standard normal CDF. scipy.stats is imported on first use: it costs about half a second, which the
    figures drawn from records (:func:`exact_accuracy_curve` only) do not pay."""
    from scipy.stats import norm

    return norm.cdf(z)


# ---------------------------------------------------------------------------
# argument validation
# ---------------------------------------------------------------------------


def _check_p(p: float) -> float:
    p = float(p)
    if not 0.5 <= p <= 1.0:
        raise ValueError(f"p must lie in [0.5, 1], got {p}")
    return p


def _check_d(d: int) -> int:
    if int(d) != d or d < 1:
        raise ValueError(f"d must be a positive integer, got {d}")
    return int(d)


def _check_eps(eps: float) -> float:
    eps = float(eps)
    if not eps >= 0.0:
        raise ValueError(f"eps must be non-negative, got {eps}")
    return eps


def _check_w(w: ArrayLike, d: int) -> np.ndarray:
    w = np.asarray(w, dtype=np.float64)
    if w.shape != (d + 1,):
        raise ValueError(f"w must have shape ({d + 1},), got {w.shape}")
    if not np.all(np.isfinite(w)):
        raise ValueError("w must be finite")
    return w


# ---------------------------------------------------------------------------
# sampling
# ---------------------------------------------------------------------------


def default_eta(d: int, k: float = 3.0) -> float:
    """Return ``k / sqrt(d)``, the paper's scaling of the Gaussian mean (``k = 3`` in its example).

    With this choice the averaging classifier has standard accuracy ``Phi(k)`` and robust accuracy
    ``Phi(-k)`` at ``eps = 2 * eta``.
    """
    d = _check_d(d)
    return float(k) / math.sqrt(d)


def sample_tsipras(
    n: int, p: float, eta: float, d: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``n`` i.i.d. samples from ``D(p, eta, d)``.

    Returns
    -------
    x : float64 array of shape ``[n, d + 1]``; column 0 is ``x_1 in {-1, +1}`` (equal to ``y`` with
        probability ``p``), columns ``1..d`` are ``N(eta * y, 1)``.
    y : int64 array of shape ``[n]`` with values in ``{-1, +1}``, uniformly distributed.
    """
    p = _check_p(p)
    d = _check_d(d)
    n = int(n)
    if n < 0:
        raise ValueError(f"n must be non-negative, got {n}")
    y = 2 * rng.integers(0, 2, size=n, dtype=np.int64) - 1
    agree = rng.random(n) < p
    x = np.empty((n, d + 1), dtype=np.float64)
    x[:, 0] = np.where(agree, y, -y)
    x[:, 1:] = float(eta) * y[:, None] + rng.standard_normal((n, d))
    return x, y


# ---------------------------------------------------------------------------
# exact accuracies of linear classifiers
# ---------------------------------------------------------------------------


def linear_accuracy(w: ArrayLike, b: float, p: float, eta: float, d: int, eps: float = 0.0) -> float:
    """Exact (population) accuracy of ``sign(w . x + b)`` on ``D(p, eta, d)`` under the worst-case
    l_inf perturbation of budget ``eps`` (``eps = 0`` gives the standard accuracy).

    ``w`` is an arbitrary real vector of length ``d + 1`` (entries may be negative or zero) and ``b``
    an arbitrary bias. Write ``s = y * x_1 in {+1, -1}`` (``+1`` with probability ``p``),
    ``mu = eta * sum_{i>=2} w_i`` and ``sigma = sqrt(sum_{i>=2} w_i^2)``. Conditioned on ``(y, s)``
    the worst-case margin is

        ``m = w_1 s + y b - eps ||w||_1 + G``,  ``G = y * sum_{i>=2} w_i x_i ~ N(mu, sigma^2)``,

    so ``P(m > 0 | y, s) = Phi((mu + w_1 s + y b - eps ||w||_1) / sigma)`` and the result is

        ``1/2 sum_{y = +-1} [p P(m > 0 | y, +1) + (1 - p) P(m > 0 | y, -1)]``.

    The bias enters as ``y b`` and is therefore averaged over both labels separately.
    If all Gaussian weights are zero (``sigma = 0``) the margin is deterministic given ``(y, s)``
    and the conditional probability is the indicator ``m > 0``: a margin of exactly zero
    (``sign(0)``) is counted as an error.
    """
    p = _check_p(p)
    d = _check_d(d)
    eps = _check_eps(eps)
    w = _check_w(w, d)
    b = float(b)
    eta = float(eta)

    w1 = float(w[0])
    wg = w[1:]
    mu = eta * float(np.sum(wg))
    sigma = float(np.sqrt(np.sum(wg * wg)))
    l1 = float(np.sum(np.abs(w)))

    acc = 0.0
    for yy in (1.0, -1.0):
        for s, prob in ((1.0, p), (-1.0, 1.0 - p)):
            shift = mu + w1 * s + yy * b - eps * l1
            if sigma > 0.0:
                cond = float(_phi(shift / sigma))
            else:
                cond = 1.0 if shift > 0.0 else 0.0
            acc += 0.5 * prob * cond
    return float(acc)


def family_weights(a: float, b: float, d: int) -> np.ndarray:
    """Weights ``(a, b, ..., b)`` (length ``d + 1``) of the classifier ``sign(a x_1 + b sum_{i>=2} x_i)``."""
    d = _check_d(d)
    w = np.full(d + 1, float(b), dtype=np.float64)
    w[0] = float(a)
    return w


def family_accuracy(a: float, b: float, p: float, eta: float, d: int, eps: float = 0.0) -> float:
    """Exact accuracy of ``sign(a x_1 + b sum_{i>=2} x_i)`` (no bias) under an l_inf adversary of
    budget ``eps``, for ``a >= 0`` and ``b > 0``:

        ``p Phi((b d eta + a - eps (a + b d)) / (b sqrt(d)))
          + (1 - p) Phi((b d eta - a - eps (a + b d)) / (b sqrt(d)))``.

    This is :func:`linear_accuracy` specialised to ``w = (a, b, ..., b)``, ``||w||_1 = a + b d``.
    """
    p = _check_p(p)
    d = _check_d(d)
    eps = _check_eps(eps)
    a = float(a)
    b = float(b)
    if a < 0.0 or b <= 0.0:
        raise ValueError(f"family_accuracy needs a >= 0 and b > 0, got a={a}, b={b}")
    eta = float(eta)
    scale = b * math.sqrt(d)
    base = b * d * eta - eps * (a + b * d)
    return float(p * _phi((base + a) / scale) + (1.0 - p) * _phi((base - a) / scale))


def averaging_weights(d: int) -> np.ndarray:
    """Weights ``(0, 1/d, ..., 1/d)`` of the averaging classifier ``sign(mean(x_2..x_{d+1}))``."""
    d = _check_d(d)
    w = np.full(d + 1, 1.0 / d, dtype=np.float64)
    w[0] = 0.0
    return w


def averaging_accuracy(eta: float, d: int, eps: float = 0.0) -> float:
    """Exact accuracy ``Phi((eta - eps) sqrt(d))`` of ``f_avg = sign(mean(x_2..x_{d+1}))`` under an
    l_inf adversary of budget ``eps``.

    The mean is ``N(eta y, 1/d)`` and the adversary lowers the margin by ``||w||_1 eps = eps``; the
    result does not depend on ``p``.
    """
    d = _check_d(d)
    eps = _check_eps(eps)
    return float(_phi((float(eta) - eps) * math.sqrt(d)))


def bayes_weights(p: float, eta: float, d: int) -> np.ndarray:
    """Weights ``(log(p / (1 - p)), 2 eta, ..., 2 eta)`` of the Bayes-optimal (standard) classifier.

    ``w . x`` is exactly the log-likelihood ratio ``log P(x | y=+1) / P(x | y=-1)``; with uniform
    labels the Bayes classifier is ``sign(w . x)`` (no bias). Requires ``0.5 <= p < 1`` (for
    ``p = 1`` the first weight is infinite) and ``eta > 0``.
    """
    p = _check_p(p)
    d = _check_d(d)
    if p >= 1.0:
        raise ValueError("bayes_weights needs p < 1 (the weight of x_1 is infinite for p = 1)")
    if not float(eta) > 0.0:
        raise ValueError(f"bayes_weights needs eta > 0, got {eta}")
    w = np.full(d + 1, 2.0 * float(eta), dtype=np.float64)
    w[0] = math.log(p / (1.0 - p))
    return w


def bayes_accuracy(p: float, eta: float, d: int) -> float:
    """Standard (``eps = 0``) accuracy of the Bayes-optimal classifier, i.e. the best accuracy any
    classifier can reach on ``D(p, eta, d)``:

        ``p Phi(eta sqrt(d) + c / (2 eta sqrt(d))) + (1 - p) Phi(eta sqrt(d) - c / (2 eta sqrt(d)))``,
        ``c = log(p / (1 - p))``.

    Requires ``eta > 0``. For ``p = 1`` the value is the limit ``1`` (``x_1`` alone is perfect).
    """
    p = _check_p(p)
    d = _check_d(d)
    eta = float(eta)
    if not eta > 0.0:
        raise ValueError(f"bayes_accuracy needs eta > 0, got {eta}")
    if p >= 1.0:
        return 1.0
    c = math.log(p / (1.0 - p))
    r = eta * math.sqrt(d)
    off = c / (2.0 * r)
    return float(p * _phi(r + off) + (1.0 - p) * _phi(r - off))


def robust_feature_accuracy(p: float, eps: float = 0.0) -> float:
    """Accuracy of ``sign(x_1)`` under an l_inf adversary of budget ``eps``.

    The worst-case margin is ``y x_1 - eps``: it equals ``1 - eps`` with probability ``p`` and
    ``-1 - eps`` otherwise. Hence the accuracy is ``p`` for ``eps < 1``; for ``eps >= 1`` the
    (continuous) adversary can move ``x_1`` to ``0`` or past it, and since ``sign(0)`` counts as
    wrong the accuracy is ``0``.
    """
    p = _check_p(p)
    eps = _check_eps(eps)
    return p if eps < 1.0 else 0.0


# ---------------------------------------------------------------------------
# Theorem 2.1
# ---------------------------------------------------------------------------


def tradeoff_bound(p: float, standard_accuracy: float) -> float:
    """Upper bound of Theorem 2.1 on the robust accuracy at any ``eps >= 2 eta``.

    Any classifier (linear or not) with standard accuracy ``1 - delta`` on ``D(p, eta, d)`` has
    robust accuracy at most ``p / (1 - p) * delta`` against an l_inf adversary with
    ``eps >= 2 eta``. Returns ``p / (1 - p) * (1 - standard_accuracy)`` (not clipped to ``[0, 1]``);
    for ``p = 1`` the bound is vacuous and ``inf`` is returned.
    """
    p = _check_p(p)
    acc = float(standard_accuracy)
    if not 0.0 <= acc <= 1.0:
        raise ValueError(f"standard_accuracy must lie in [0, 1], got {acc}")
    if p >= 1.0:
        return math.inf
    return p / (1.0 - p) * (1.0 - acc)


def check_bound(
    p: float,
    eta: float,
    standard_accuracy: float,
    robust_accuracy: float,
    eps: float,
    tol: float = 0.0,
) -> bool:
    """Return ``True`` iff the pair of accuracies is consistent with Theorem 2.1.

    That is: ``eps < 2 eta`` (the theorem does not apply) or
    ``robust_accuracy <= tradeoff_bound(p, standard_accuracy) + tol``.
    """
    eps = _check_eps(eps)
    if eps < 2.0 * float(eta):
        return True
    return bool(float(robust_accuracy) <= tradeoff_bound(p, standard_accuracy) + float(tol))


# ---------------------------------------------------------------------------
# finite-sample counterpart
# ---------------------------------------------------------------------------


def empirical_linear_accuracy(w: ArrayLike, b: float, x: ArrayLike, y: ArrayLike, eps: float = 0.0) -> float:
    """Exact worst-case l_inf accuracy of ``sign(w . x + b)`` on the given samples.

    A sample ``(x, y)`` counts as correct iff ``y (w . x + b) - eps ||w||_1 > 0`` (the margin under
    the optimal perturbation ``-eps sign(w) y``; a zero margin is an error). ``x`` has shape
    ``[n, d + 1]`` and ``y`` shape ``[n]`` with values in ``{-1, +1}``. Returns ``nan`` for ``n = 0``.
    """
    eps = _check_eps(eps)
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or y.shape != (x.shape[0],):
        raise ValueError(f"x must be [n, d+1] and y [n], got {x.shape} and {y.shape}")
    w = _check_w(w, x.shape[1] - 1)
    if x.shape[0] == 0:
        return math.nan
    margin = y * (x @ w + float(b)) - eps * float(np.sum(np.abs(w)))
    return float(np.mean(margin > 0.0))


def exact_accuracy_curve(margin: np.ndarray, l1: float, eps_values: Sequence[float]) -> np.ndarray:
    """Exact worst-case accuracy on the points with clean margins ``margin`` for each budget in
    ``eps_values`` (``mean(margin - eps l1 > 0)``), from per-sample records alone."""
    m = np.asarray(margin, dtype=np.float64)
    return np.array([float(np.mean(m - float(e) * float(l1) > 0)) for e in eps_values])
