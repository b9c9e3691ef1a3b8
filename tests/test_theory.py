"""Tests for the closed forms of the Tsipras et al. (2019) trade-off model."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm

from tradeoff.theory.closed_forms import (
    averaging_accuracy,
    averaging_weights,
    bayes_accuracy,
    bayes_weights,
    check_bound,
    default_eta,
    empirical_linear_accuracy,
    family_accuracy,
    family_weights,
    linear_accuracy,
    robust_feature_accuracy,
    sample_tsipras,
    tradeoff_bound,
)

N_MC = 120_000
N_DRAWS = 4
_SAMPLE_CACHE: dict[int, tuple] = {}


def _draw(idx: int) -> dict:
    """Seeded random parameters (p, d, eta, eps) for Monte Carlo draw ``idx``."""
    rng = np.random.default_rng(1000 + idx)
    d = int(rng.integers(1, 21))
    p = float(rng.uniform(0.5, 0.95))
    eta = float(rng.uniform(0.2, 1.5)) / math.sqrt(d)
    eps = float(rng.uniform(0.2, 1.0)) * eta
    return {"p": p, "d": d, "eta": eta, "eps": eps, "idx": idx}


def _samples(idx: int) -> tuple[dict, np.ndarray, np.ndarray]:
    if idx not in _SAMPLE_CACHE:
        prm = _draw(idx)
        x, y = sample_tsipras(N_MC, prm["p"], prm["eta"], prm["d"], np.random.default_rng(2000 + idx))
        _SAMPLE_CACHE[idx] = (prm, x, y)
    return _SAMPLE_CACHE[idx]


def _random_w(rng: np.random.Generator, d: int) -> tuple[np.ndarray, float]:
    """Random weights with negative and zero entries (first entry non-zero) and a non-zero bias."""
    w = rng.standard_normal(d + 1)
    if d >= 2:
        w[1 + rng.choice(d, size=max(1, d // 3), replace=False)] = 0.0
    if np.all(w[1:] == 0.0):
        w[1] = -0.7
    w[0] = rng.choice([-1.0, 1.0]) * rng.uniform(0.3, 2.0)
    b = float(rng.choice([-1.0, 1.0]) * rng.uniform(0.2, 1.0) * np.linalg.norm(w[1:]))
    return w, b


def _mc_accuracy(w: np.ndarray, b: float, x: np.ndarray, y: np.ndarray, eps: float) -> float:
    """Monte Carlo accuracy with the explicit worst-case perturbation x' = x - eps sign(w) y."""
    x_adv = x - eps * np.sign(w)[None, :] * y[:, None]
    return float(np.mean(np.sign(x_adv @ w + b) == y))


def _assert_mc_close(exact: float, est: float, n: int = N_MC) -> None:
    se = math.sqrt(max(exact * (1.0 - exact), 0.0) / n)
    assert abs(est - exact) <= 3.0 * se + 1.0 / n, (exact, est, se)


# ---------------------------------------------------------------------------
# sampling
# ---------------------------------------------------------------------------


def test_sample_shapes_and_moments():
    p, eta, d = 0.8, 0.4, 5
    x, y = sample_tsipras(50_000, p, eta, d, np.random.default_rng(0))
    assert x.shape == (50_000, d + 1) and x.dtype == np.float64
    assert y.shape == (50_000,) and np.issubdtype(y.dtype, np.integer)
    assert set(np.unique(y)) == {-1, 1}
    assert set(np.unique(x[:, 0])) == {-1.0, 1.0}
    assert abs(np.mean(y == 1) - 0.5) < 4 * math.sqrt(0.25 / 50_000)
    agree = np.mean(x[:, 0] == y)
    assert abs(agree - p) < 4 * math.sqrt(p * (1 - p) / 50_000)
    yg = y[:, None] * x[:, 1:]
    assert np.all(np.abs(yg.mean(axis=0) - eta) < 4 / math.sqrt(50_000))
    assert np.all(np.abs(x[:, 1:].var(axis=0) - (1 + eta**2)) < 0.05)


def test_sample_reproducible():
    a = sample_tsipras(100, 0.7, 0.3, 4, np.random.default_rng(5))
    b = sample_tsipras(100, 0.7, 0.3, 4, np.random.default_rng(5))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


# ---------------------------------------------------------------------------
# closed forms vs Monte Carlo
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("idx", range(N_DRAWS))
def test_linear_accuracy_matches_monte_carlo(idx):
    prm, x, y = _samples(idx)
    p, d, eta = prm["p"], prm["d"], prm["eta"]
    rng = np.random.default_rng(3000 + idx)
    for _ in range(2):
        w, b = _random_w(rng, d)
        assert b != 0.0 and np.any(w < 0)
        for eps in (0.0, prm["eps"]):
            exact = linear_accuracy(w, b, p, eta, d, eps)
            mc = _mc_accuracy(w, b, x, y, eps)
            _assert_mc_close(exact, mc)
            emp = empirical_linear_accuracy(w, b, x, y, eps)
            assert abs(emp - mc) <= 2.0 / N_MC


@pytest.mark.parametrize("idx", range(N_DRAWS))
def test_family_averaging_bayes_match_monte_carlo(idx):
    prm, x, y = _samples(idx)
    p, d, eta, eps = prm["p"], prm["d"], prm["eta"], prm["eps"]
    a, bb = 0.8 + 0.3 * idx, 0.5
    wf = family_weights(a, bb, d)
    for e in (0.0, eps):
        _assert_mc_close(family_accuracy(a, bb, p, eta, d, e), _mc_accuracy(wf, 0.0, x, y, e))
        _assert_mc_close(averaging_accuracy(eta, d, e), _mc_accuracy(averaging_weights(d), 0.0, x, y, e))
    _assert_mc_close(bayes_accuracy(p, eta, d), _mc_accuracy(bayes_weights(p, eta, d), 0.0, x, y, 0.0))


@pytest.mark.parametrize("idx", range(2))
def test_robust_feature_matches_monte_carlo(idx):
    prm, x, y = _samples(idx)
    p, d = prm["p"], prm["d"]
    w = np.zeros(d + 1)
    w[0] = 1.0
    for eps in (0.0, 0.5, 0.999, 1.0, 1.5):
        exact = robust_feature_accuracy(p, eps)
        _assert_mc_close(exact, _mc_accuracy(w, 0.0, x, y, eps))
        assert linear_accuracy(w, 0.0, p, prm["eta"], d, eps) == exact


def test_robust_feature_values():
    assert robust_feature_accuracy(0.9, 0.0) == 0.9
    assert robust_feature_accuracy(0.9, 0.99) == 0.9
    assert robust_feature_accuracy(0.9, 1.0) == 0.0
    assert robust_feature_accuracy(0.9, 3.0) == 0.0


def test_degenerate_linear_ties_and_bias():
    """Gaussian weights all zero: deterministic margins, sign(0) counted as wrong."""
    p, eta, d = 0.8, 0.3, 3
    w = np.array([1.0, 0.0, 0.0, 0.0])
    # margin = s + y b - eps; y * b flips with the label
    assert linear_accuracy(w, 0.5, p, eta, d) == pytest.approx(p)
    assert linear_accuracy(w, 1.0, p, eta, d) == pytest.approx(p / 2)  # two zero-margin cases
    assert linear_accuracy(w, 2.0, p, eta, d) == pytest.approx(0.5)  # predicts +1 always
    assert linear_accuracy(w, -2.0, p, eta, d) == pytest.approx(0.5)
    assert linear_accuracy(w, 0.5, p, eta, d, eps=0.5) == pytest.approx(p / 2)
    assert linear_accuracy(-w, 0.0, p, eta, d) == pytest.approx(1 - p)  # sign(-x_1), no ties
    assert linear_accuracy(np.zeros(d + 1), 0.0, p, eta, d) == 0.0  # constant 0 output is always wrong
    x, y = sample_tsipras(N_MC, p, eta, d, np.random.default_rng(7))
    for b, eps in ((0.5, 0.0), (1.0, 0.0), (2.0, 0.0), (0.5, 0.5), (0.2, 0.3)):
        _assert_mc_close(linear_accuracy(w, b, p, eta, d, eps), _mc_accuracy(w, b, x, y, eps))


# ---------------------------------------------------------------------------
# consistency between closed forms
# ---------------------------------------------------------------------------


def test_family_equals_linear():
    for p in (0.5, 0.7, 0.95, 1.0):
        for d in (1, 4, 50):
            eta = 2.0 / math.sqrt(d)
            for a in (0.0, 0.3, 1.0, 4.0):
                for b in (0.05, 0.5, 2.0):
                    for eps in (0.0, 0.5 * eta, 2 * eta, 1.3):
                        fa = family_accuracy(a, b, p, eta, d, eps)
                        la = linear_accuracy(family_weights(a, b, d), 0.0, p, eta, d, eps)
                        assert fa == pytest.approx(la, abs=1e-12)


def test_averaging_and_bayes_equal_linear():
    for p in (0.5, 0.6, 0.9, 0.99):
        for d in (1, 10, 100):
            for eta in (0.05, 3.0 / math.sqrt(d)):
                for eps in (0.0, eta, 2 * eta):
                    assert averaging_accuracy(eta, d, eps) == pytest.approx(
                        linear_accuracy(averaging_weights(d), 0.0, p, eta, d, eps), abs=1e-12
                    )
                assert bayes_accuracy(p, eta, d) == pytest.approx(
                    linear_accuracy(bayes_weights(p, eta, d), 0.0, p, eta, d), abs=1e-12
                )
    w = bayes_weights(0.9, 0.25, 3)
    np.testing.assert_allclose(w, [math.log(9.0), 0.5, 0.5, 0.5])
    np.testing.assert_allclose(averaging_weights(4), [0.0, 0.25, 0.25, 0.25, 0.25])


def test_linear_accuracy_scale_invariant():
    rng = np.random.default_rng(11)
    for _ in range(5):
        d = int(rng.integers(1, 10))
        w, b = _random_w(rng, d)
        for eps in (0.0, 0.2):
            base = linear_accuracy(w, b, 0.8, 0.4, d, eps)
            assert linear_accuracy(3.7 * w, 3.7 * b, 0.8, 0.4, d, eps) == pytest.approx(base, abs=1e-12)


def test_bayes_is_optimal():
    rng = np.random.default_rng(12)
    for p in (0.5, 0.7, 0.9, 0.98):
        for d in (1, 5, 40):
            for eta in (0.1, 1.0 / math.sqrt(d), 3.0 / math.sqrt(d)):
                best = bayes_accuracy(p, eta, d)
                others = [family_accuracy(a, b, p, eta, d) for a in np.linspace(0, 6, 25) for b in (0.1, 1.0)]
                others.append(averaging_accuracy(eta, d))
                others.append(robust_feature_accuracy(p))
                for _ in range(5):
                    w, b = _random_w(rng, d)
                    others.append(linear_accuracy(w, b, p, eta, d))
                    others.append(linear_accuracy(np.abs(w), 0.1 * b, p, eta, d))
                assert best >= max(others) - 1e-12
                # the grid contains near-optimal classifiers, so the gap must be small
                assert best - max(others[:50]) < 0.02


# ---------------------------------------------------------------------------
# Theorem 2.1
# ---------------------------------------------------------------------------


def test_bound_holds_at_two_eta():
    rng = np.random.default_rng(13)
    for p in (0.55, 0.7, 0.9, 0.99):
        for d in (1, 10, 100):
            for eta in (0.1 / math.sqrt(d), 1.0 / math.sqrt(d), 3.0 / math.sqrt(d)):
                eps = 2 * eta
                classifiers = [
                    (family_weights(a, b, d), 0.0) for a in (0, 0.1, 1, 5, 50) for b in (0.01, 0.1, 1)
                ]
                classifiers.append((averaging_weights(d), 0.0))
                classifiers.append((bayes_weights(p, eta, d), 0.0))
                classifiers.extend(_random_w(rng, d) for _ in range(3))
                for w, b in classifiers:
                    std = linear_accuracy(w, b, p, eta, d)
                    rob = linear_accuracy(w, b, p, eta, d, eps)
                    assert rob <= tradeoff_bound(p, std) + 1e-12
                    assert check_bound(p, eta, std, rob, eps, tol=1e-12)
                for e in (eps, 1.5 * eps):
                    std = averaging_accuracy(eta, d)
                    assert averaging_accuracy(eta, d, e) <= tradeoff_bound(p, std) + 1e-12
                    assert bayes_accuracy(p, eta, d) <= 1.0
                    std = bayes_accuracy(p, eta, d)
                    rob = linear_accuracy(bayes_weights(p, eta, d), 0.0, p, eta, d, e)
                    assert rob <= tradeoff_bound(p, std) + 1e-12


def test_bound_tight_for_robust_feature():
    for p in (0.5, 0.6, 0.8, 0.95, 0.999):
        for eta in (0.01, 0.2, 0.49):
            std = robust_feature_accuracy(p, 0.0)
            rob = robust_feature_accuracy(p, 2 * eta)
            assert tradeoff_bound(p, std) == pytest.approx(p, abs=1e-12)
            assert rob == pytest.approx(tradeoff_bound(p, std), abs=1e-12)


def test_check_bound_logic():
    p, eta = 0.9, 0.1
    bound = tradeoff_bound(p, 0.95)
    assert bound == pytest.approx(0.45)
    assert check_bound(p, eta, 0.95, 0.9, eps=0.19)  # eps < 2 eta: theorem silent
    assert not check_bound(p, eta, 0.95, 0.9, eps=0.2)
    assert not check_bound(p, eta, 0.95, 0.9, eps=0.5)
    assert check_bound(p, eta, 0.95, 0.45, eps=0.2)
    assert not check_bound(p, eta, 0.95, 0.46, eps=0.2)
    assert check_bound(p, eta, 0.95, 0.46, eps=0.2, tol=0.02)
    assert tradeoff_bound(1.0, 0.9) == math.inf


def test_paper_examples():
    d = 1000
    eta = default_eta(d)
    assert eta == pytest.approx(3.0 / math.sqrt(d))
    std = averaging_accuracy(eta, d)
    rob = averaging_accuracy(eta, d, 2 * eta)
    assert std >= 0.99865
    assert std == pytest.approx(norm.cdf(3.0), abs=1e-12)
    assert rob < 0.01
    assert rob == pytest.approx(norm.cdf(-3.0), abs=1e-12)
    assert tradeoff_bound(0.95, 0.99) == pytest.approx(0.19, abs=1e-12)


def test_input_validation():
    with pytest.raises(ValueError):
        linear_accuracy(np.ones(3), 0.0, 0.8, 0.1, d=3)
    with pytest.raises(ValueError):
        linear_accuracy(np.ones(4), 0.0, 0.4, 0.1, d=3)
    with pytest.raises(ValueError):
        linear_accuracy(np.ones(4), 0.0, 0.8, 0.1, d=3, eps=-0.1)
    with pytest.raises(ValueError):
        family_accuracy(-1.0, 1.0, 0.8, 0.1, 3)
    with pytest.raises(ValueError):
        bayes_weights(1.0, 0.1, 3)
    with pytest.raises(ValueError):
        sample_tsipras(10, 1.2, 0.1, 3, np.random.default_rng(0))
    assert bayes_accuracy(1.0, 0.1, 3) == 1.0
