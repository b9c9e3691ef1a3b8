"""Certificates for the mixed classifier of a standard model g and a smoothed robust model h.

The mixed classifier is h_a(x) = log((1 - a) * softmax(g(x)) + a * p(x)), where p(x) is the vector of
smoothed probabilities p_i(x) = P_{delta ~ N(0, sigma^2 I)}[f(x + delta) = i] of a base classifier f
and a = ``alpha_mix`` in [1/2, 1].  Both radii below hold for ANY standard model g (its
probabilities are bounded only by [0, 1]), so they only depend on the smoothed probabilities.

* Theorem 2 (smoothing): r_RS = sigma/2 * [Phi^{-1}(a p_y) - Phi^{-1}(a max_{i != y} p_i + 1 - a)].
  Proof sketch: a * 1[f = y] and a * 1[f = i] + 1 - a take values in [0, 1], so by Salman et al.
  (2019) Phi^{-1} of their Gaussian smoothings, Phi^{-1}(a p_y) and Phi^{-1}(a p_i + 1 - a),
  are (1/sigma)-Lipschitz in l2; the mixed margin of y over i is at least a p_y - (a p_i + 1 - a) > 0
  while the first exceeds the second.  At a = 1 this is Cohen/Salman's sigma/2 (Phi^{-1}(p_A) -
  Phi^{-1}(p_B)).
* Theorem 1 (Lipschitz): r_Lip = (a mu + a - 1) / (a L), mu = p_y - max_{i != y} p_i, where L is an l2
  Lipschitz constant of every difference p_y - p_i.  Bai et al. (2023) and their code use
  L = 2 sqrt(2/pi) / sigma (each p_i is sqrt(2/pi)/sigma-Lipschitz, Salman et al. 2019, Lemma 1, and a
  difference of two is at most twice that); the sharp constant is L = sqrt(2/pi) / sigma, derived below.

Sharp Lipschitz constant of a Gaussian smoothing.  Let u: R^d -> [lo, hi] be measurable and
U(x) = E[u(x + sigma Z)], Z ~ N(0, I).  U is smooth with grad U(x) = E[u(x + sigma Z) Z] / sigma (Stein's
lemma).  For a unit vector v, E[Z.v] = 0, so with the midpoint c = (lo + hi)/2,
    v . grad U(x) = E[(u(x + sigma Z) - c) (Z.v)] / sigma <= (hi - lo)/2 * E|Z.v| / sigma
                  = (hi - lo)/2 * sqrt(2/pi) / sigma = (hi - lo) / (sigma sqrt(2 pi)),
since |u - c| <= (hi - lo)/2 and Z.v ~ N(0, 1) has E|Z.v| = sqrt(2/pi).  Hence U is
(hi - lo)/(sigma sqrt(2 pi))-Lipschitz in l2, with equality for a half-space indicator (u = 1[x.v > 0],
whose smoothing Phi(x.v/sigma) has slope phi(0)/sigma at the boundary), so the constant cannot be lowered.
A class probability p_i is the smoothing of 1[f = i] in [0, 1]: constant 1/(sigma sqrt(2 pi)), half of
Salman et al.'s sqrt(2/pi)/sigma (their proof bounds |u| <= 1 instead of |u - c| <= 1/2).  The difference
p_y - p_i is the smoothing of 1[f = y] - 1[f = i], which takes values in [-1, 1] (range 2): constant
2/(sigma sqrt(2 pi)) = sqrt(2/pi)/sigma, half the paper's 2 sqrt(2/pi)/sigma.  So the sharp radius is
exactly twice the paper's: r_Lip_sharp = 2 r_Lip.

For a in [1/2, 1] one has r_RS >= 2 a r_Lip = a r_Lip_sharp >= r_Lip: Phi^{-1} has slope >= sqrt(2 pi)
everywhere, so r_RS >= sigma/2 * sqrt(2 pi) (a mu + a - 1) = 2 a r_Lip.  At a = 1 Theorem 2 therefore
dominates both Lipschitz radii; for a < 1 the sharp Lipschitz radius can exceed Theorem 2's (Theorem 2
applies Salman et al.'s lemma to a p_y, whose range is a, not 1), and then it is the larger valid radius.
All radii are positive exactly when a mu > 1 - a.

Both radii must be computed from confidence bounds on p (never point estimates);
:func:`confidence_bounds` provides them from Monte-Carlo counts.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from .bounds import ABSTAIN, cp_lower, cp_upper

__all__ = [
    "MixedCertificate",
    "confidence_bounds",
    "mixed_rs_radius",
    "mixed_lipschitz_radius",
    "mixed_prediction_agrees",
    "certify_mixed",
]

ArrayLike = float | np.ndarray


def _out(value: np.ndarray) -> float | np.ndarray:
    return float(value) if value.ndim == 0 else value


def _check_bounds(p_y: np.ndarray, p_o: np.ndarray) -> None:
    if np.any((p_y < 0) | (p_y > 1) | (p_o < 0) | (p_o > 1)):
        raise ValueError("probability bounds must lie in [0, 1]")


def mixed_rs_radius(
    p_y_lower: ArrayLike, p_other_upper: ArrayLike, alpha_mix: float, sigma: float
) -> float | np.ndarray:
    """Theorem 2 radius sigma/2 [Phi^{-1}(a p_y_lower) - Phi^{-1}(a p_other_upper + 1 - a)], 0 if negative.

    Guarantee: if p_y(x) >= p_y_lower and max_{i != y} p_i(x) <= p_other_upper, the mixed classifier
    (exact smoothed probabilities, any standard model) predicts y on the open l2 ball of this radius
    around x.  For alpha_mix < 1/2 the mixed classifier cannot be certified this way and 0.0 is returned
    (no error is raised).  Vectorised over the probability bounds.
    """
    p_y = np.asarray(p_y_lower, dtype=np.float64)
    p_o = np.asarray(p_other_upper, dtype=np.float64)
    _check_bounds(p_y, p_o)
    if not 0.0 <= alpha_mix <= 1.0:
        raise ValueError(f"alpha_mix must lie in [0, 1], got {alpha_mix}")
    if alpha_mix < 0.5:
        return _out(np.zeros(np.broadcast(p_y, p_o).shape))
    hi = alpha_mix * p_y
    lo = alpha_mix * p_o + 1.0 - alpha_mix
    from scipy import stats

    with np.errstate(invalid="ignore"):
        r = 0.5 * sigma * (stats.norm.ppf(hi) - stats.norm.ppf(lo))
    return _out(np.where(hi > lo, r, 0.0))


PAPER_LIPSCHITZ_FACTOR = 2.0 * math.sqrt(2.0 / math.pi)
"""sigma times the Lipschitz constant of p_y - p_i used by Bai et al. (2023, Theorem 1) and their code."""
SHARP_LIPSCHITZ_FACTOR = math.sqrt(2.0 / math.pi)
"""sigma times the sharp Lipschitz constant of p_y - p_i (the smoothing of a [-1, 1]-valued function)."""


def mixed_lipschitz_radius(
    p_y_lower: ArrayLike, p_other_upper: ArrayLike, alpha_mix: float, sigma: float, sharp: bool = False
) -> float | np.ndarray:
    """Theorem 1 radius (a mu + a - 1) / (a L), mu = p_y_lower - p_other_upper.

    L = 2 sqrt(2/pi)/sigma (Bai et al. 2023, Theorem 1, as in their code) or, with ``sharp=True``,
    L = sqrt(2/pi)/sigma, the l2 Lipschitz constant of the Gaussian smoothing of the [-1, 1]-valued
    1[f = y] - 1[f = i] (derived in the module docstring), which doubles the radius.
    Guarantee: same as :func:`mixed_rs_radius` for either constant; 0 if negative, and 0.0 for
    alpha_mix < 1/2.  Vectorised over the probability bounds.
    """
    p_y = np.asarray(p_y_lower, dtype=np.float64)
    p_o = np.asarray(p_other_upper, dtype=np.float64)
    _check_bounds(p_y, p_o)
    if not 0.0 <= alpha_mix <= 1.0:
        raise ValueError(f"alpha_mix must lie in [0, 1], got {alpha_mix}")
    if alpha_mix < 0.5:
        return _out(np.zeros(np.broadcast(p_y, p_o).shape))
    lipschitz = (SHARP_LIPSCHITZ_FACTOR if sharp else PAPER_LIPSCHITZ_FACTOR) / sigma
    r = (alpha_mix * (p_y - p_o) + alpha_mix - 1.0) / (alpha_mix * lipschitz)
    return _out(np.maximum(r, 0.0))


def confidence_bounds(counts: np.ndarray, y: int, alpha: float) -> tuple[float, float]:
    """Simultaneous bounds (p_y_lower, p_other_upper) from class counts of n Monte-Carlo draws.

    Guarantee: with probability at least 1 - alpha over the draws (y fixed independently of them,
    e.g. chosen from separate selection counts), both p_y(x) >= p_y_lower and
    max_{i != y} p_i(x) <= p_other_upper hold.  The error is split half/half: p_y_lower is the
    one-sided Clopper-Pearson bound at level alpha/2; each of the C - 1 other classes gets a
    Clopper-Pearson upper bound at level alpha/(2(C - 1)) (Bonferroni), and since
    max_{i != y} p_i <= 1 - p_y the final bound is min(1 - p_y_lower, max_i cp_upper_i).
    """
    counts = np.asarray(counts, dtype=np.int64)
    num_classes = counts.shape[0]
    if num_classes < 2:
        raise ValueError("need at least two classes")
    if not 0 <= y < num_classes:
        raise ValueError(f"class {y} out of range")
    n = int(counts.sum())
    p_y_lower = float(cp_lower(int(counts[y]), n, alpha / 2.0))
    others = np.delete(counts, y)
    per_class = np.atleast_1d(cp_upper(others, n, alpha / (2.0 * (num_classes - 1))))
    p_other_upper = float(min(1.0 - p_y_lower, float(per_class.max())))
    return p_y_lower, p_other_upper


def mixed_prediction_agrees(mixed_logits: np.ndarray | list[float], y: int) -> bool:
    """Whether the (estimated) mixed classifier's clean prediction ``argmax(mixed_logits)`` equals y."""
    return int(np.argmax(np.asarray(mixed_logits))) == int(y)


class MixedCertificate(NamedTuple):
    """Output of :func:`certify_mixed`; prediction is ABSTAIN (-1) when not certified (radius 0)."""

    prediction: int
    radius_rs: float
    radius_lipschitz: float
    p_y_lower: float
    p_other_upper: float
    radius_lipschitz_sharp: float = 0.0


def certify_mixed(
    counts0: np.ndarray,
    counts: np.ndarray,
    alpha_mix: float,
    sigma: float,
    alpha: float,
    mixed_pred: int | None = None,
) -> MixedCertificate:
    """Certify the mixed classifier at x from selection counts ``counts0`` and estimation ``counts``.

    y = argmax(counts0) (as in Cohen's CERTIFY); bounds come from :func:`confidence_bounds` on the
    independent ``counts``; the point is certified iff the Theorem 2 radius is positive (the Theorem 1
    radii, with the paper's and the sharp Lipschitz constant, are then positive too and also reported;
    the paper's is never larger than Theorem 2's, the sharp one can be for alpha_mix < 1).

    Guarantee: with probability at least 1 - alpha over the Monte-Carlo draws, if the prediction is not
    ABSTAIN, the mixed classifier with EXACT smoothed probabilities (and any standard model) predicts y
    on the open l2 ball of radius ``radius_rs``, and on those of radius ``radius_lipschitz`` and
    ``radius_lipschitz_sharp`` (the same event: all three use the same bounds on p).

    A positive radius already forces the exact mixed classifier to predict y at x.  A mixed classifier
    that is evaluated with ESTIMATED smoothed probabilities may still predict another class at x, and
    then the certificate says nothing about it: pass its clean prediction as ``mixed_pred`` (see
    :func:`mixed_prediction_agrees`); if it differs from y the result is ABSTAIN with radius 0.
    For alpha_mix < 1/2 the radii are 0 (ABSTAIN).
    """
    y = int(np.argmax(np.asarray(counts0)))
    p_y_lower, p_other_upper = confidence_bounds(counts, y, alpha)
    r_rs = float(mixed_rs_radius(p_y_lower, p_other_upper, alpha_mix, sigma))
    r_lip = float(mixed_lipschitz_radius(p_y_lower, p_other_upper, alpha_mix, sigma))
    r_sharp = float(mixed_lipschitz_radius(p_y_lower, p_other_upper, alpha_mix, sigma, sharp=True))
    if r_rs <= 0.0 or (mixed_pred is not None and int(mixed_pred) != y):
        return MixedCertificate(ABSTAIN, 0.0, 0.0, p_y_lower, p_other_upper, 0.0)
    return MixedCertificate(y, r_rs, r_lip, p_y_lower, p_other_upper, r_sharp)
