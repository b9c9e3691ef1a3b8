"""The Lipschitz radius of the mixed classifier (Bai et al. 2023, Theorem 1) with the paper's and the sharp constant.

Smoothed class probabilities are computed in closed form (no Monte Carlo): a classifier on R^2 that is
constant on the cells of an axis-aligned grid has p_c(x) = sum over the cells of class c of products of
one-dimensional Gaussian interval probabilities, and a half-space classifier has p(x) = Phi(w.x/sigma).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from tradeoff.certify.mixed import (
    certify_mixed,
    mixed_lipschitz_radius,
    mixed_rs_radius,
)

SIGMA = 0.4
SHARP = math.sqrt(2.0 / math.pi) / SIGMA  # Lipschitz constant of p_y - p_i
PAPER = 2.0 * SHARP


class GridClassifier:
    """A 3-class classifier on R^2, constant on the cells of a grid (outer cells unbounded)."""

    def __init__(self, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.tx = np.concatenate([[-np.inf], np.sort(rng.uniform(-1.5, 1.5, 4)), [np.inf]])
        self.ty = np.concatenate([[-np.inf], np.sort(rng.uniform(-1.5, 1.5, 4)), [np.inf]])
        self.labels = rng.integers(0, 3, size=(len(self.tx) - 1, len(self.ty) - 1))

    def smoothed(self, x: np.ndarray) -> np.ndarray:
        """Exact P[f(x + sigma Z) = c] for points x of shape [n, 2]: array [n, 3]."""
        px = np.diff(stats.norm.cdf((self.tx[None, :] - x[:, :1]) / SIGMA), axis=1)  # [n, cells in x]
        py = np.diff(stats.norm.cdf((self.ty[None, :] - x[:, 1:]) / SIGMA), axis=1)
        cell = px[:, :, None] * py[:, None, :]
        return np.stack([(cell * (self.labels == c)).sum(axis=(1, 2)) for c in range(3)], axis=1)


def _pairs(rng: np.random.Generator, n: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    x = rng.uniform(-2.5, 2.5, size=(n, 2))
    step = rng.normal(size=(n, 2)) * rng.choice([1e-3, 0.05, scale], size=(n, 1))
    return x, x + step


@pytest.mark.parametrize("seed", range(5))
def test_probability_differences_never_violate_the_sharp_constant(seed: int) -> None:
    clf = GridClassifier(seed)
    rng = np.random.default_rng(100 + seed)
    x, z = _pairs(rng, 20_000, 1.0)
    p, q = clf.smoothed(x), clf.smoothed(z)
    assert np.allclose(p.sum(axis=1), 1.0)
    dist = np.linalg.norm(x - z, axis=1)
    worst = 0.0
    for y in range(3):
        for i in range(3):
            if i != y:
                change = np.abs((p[:, y] - p[:, i]) - (q[:, y] - q[:, i]))
                assert np.all(change <= SHARP * dist + 1e-12)
                worst = max(worst, float(np.max(change / dist)))
        # one class probability alone: half of that, 1 / (sigma sqrt(2 pi))
        assert np.all(np.abs(p[:, y] - q[:, y]) <= SHARP / 2 * dist + 1e-12)
    assert worst <= SHARP


def test_sharp_constant_is_attained_by_a_half_space() -> None:
    # f = 1[w.x > 0]: p_1 - p_0 = 2 Phi(w.x / sigma) - 1 has slope 2 phi(0) / sigma = sqrt(2/pi) / sigma at the
    # boundary, so no smaller constant is valid (a halved one would be violated here)
    d = 50
    w = np.random.default_rng(1).normal(size=d)
    w /= np.linalg.norm(w)
    x = np.zeros(d)
    for h in (1e-2, 1e-4):
        z = x + h * w
        diff = lambda v: 2 * stats.norm.cdf(v @ w / SIGMA) - 1  # noqa: E731
        ratio = abs(diff(z) - diff(x)) / h
        assert 0.999 * SHARP < ratio <= SHARP


def test_sharp_radius_is_twice_the_papers_and_sound_with_exact_probabilities() -> None:
    """Worst-case standard model (all its mass on the runner-up i): the mixed classifier predicts y at x' iff
    a (p_y(x') - p_i(x')) > 1 - a for every i != y.  Every x' strictly inside the sharp radius must pass."""
    rng = np.random.default_rng(7)
    checked = 0
    for seed in range(6):
        clf = GridClassifier(seed)
        centres = rng.uniform(-2.5, 2.5, size=(400, 2))
        probs = clf.smoothed(centres)
        for a in (0.55, 0.7, 0.9, 1.0):
            for x, p in zip(centres, probs, strict=True):
                y = int(np.argmax(p))
                p_o = float(np.max(np.delete(p, y)))
                r_paper = mixed_lipschitz_radius(p[y], p_o, a, SIGMA)
                r_sharp = mixed_lipschitz_radius(p[y], p_o, a, SIGMA, sharp=True)
                assert r_sharp == pytest.approx(2 * r_paper, rel=1e-12, abs=1e-15)
                if r_sharp <= 0:
                    continue
                # points on spheres inside the radius (including just inside it), all directions
                u = rng.normal(size=(64, 2))
                u /= np.linalg.norm(u, axis=1, keepdims=True)
                radii = r_sharp * np.concatenate([rng.uniform(0, 1, 48), 1 - np.geomspace(1e-9, 1e-3, 16)])
                q = clf.smoothed(x + radii[:, None] * u)
                others = np.delete(q, y, axis=1)
                assert np.all(a * (q[:, y] - others.max(axis=1)) > 1 - a - 1e-12)
                checked += 1
    assert checked > 500


def test_sharp_radius_exceeds_theorem_2_for_small_weights_only() -> None:
    p_y, p_o = np.meshgrid(np.linspace(0, 1, 101), np.linspace(0, 1, 101))
    keep = p_y + p_o <= 1
    some_larger = False
    for a in np.linspace(0.5, 1.0, 11):
        r_rs = mixed_rs_radius(p_y[keep], p_o[keep], float(a), SIGMA)
        r_sharp = mixed_lipschitz_radius(p_y[keep], p_o[keep], float(a), SIGMA, sharp=True)
        assert np.all(r_rs >= a * r_sharp - 1e-12)  # Phi^{-1} has slope >= sqrt(2 pi)
        clear = np.abs(a * (p_y[keep] - p_o[keep]) + a - 1) > 1e-9  # away from the threshold a mu = 1 - a
        assert np.all((r_sharp > 0)[clear] == (r_rs > 0)[clear])
        some_larger |= bool(np.any(r_sharp > r_rs + 1e-9))
        if a == 1.0:
            assert np.all(r_rs >= r_sharp - 1e-12)
    assert some_larger  # e.g. a = 0.6, p_y = 0.9, p_o = 0.05: 0.230 sigma vs Theorem 2's 0.138 sigma
    assert mixed_lipschitz_radius(0.9, 0.05, 0.6, 1.0, sharp=True) == pytest.approx(
        math.sqrt(math.pi / 2) * (0.6 * 0.85 - 0.4) / 0.6)


def test_certificate_reports_both_lipschitz_radii() -> None:
    counts = np.array([100, 9800, 100])
    cert = certify_mixed(np.array([0, 10, 0]), counts, 0.8, 0.5, 0.001)
    assert cert.prediction == 1 and cert.radius_lipschitz > 0
    assert cert.radius_lipschitz_sharp == pytest.approx(2 * cert.radius_lipschitz, rel=1e-12)
    refused = certify_mixed(np.array([10, 0, 0]), counts, 0.8, 0.5, 0.001)
    assert refused.radius_lipschitz_sharp == 0.0
