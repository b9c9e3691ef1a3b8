"""Statistical tests of the certification core (bounds, smoothing, mixed and probabilistic certificates)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from prob_helpers import certify_probabilistic, naive_sequential_test
from scipy import stats

from tradeoff.certify import (
    ABSTAIN,
    GaussianNoise,
    Smooth,
    UniformL2Ball,
    UniformLinfBall,
    certify_from_counts,
    certify_mixed,
    confidence_bounds,
    count_classes,
    cp_lower,
    cp_upper,
    min_samples_for_radius,
    mixed_lipschitz_radius,
    mixed_prediction_agrees,
    mixed_rs_radius,
    point_generator,
    predict_from_counts,
)
from tradeoff.probabilistic.sequential import NaiveSequentialTest, Outcome, SequentialTest, fixed_test, run_sequential

torch.set_num_threads(1)

# A fixed linear binary classifier f(x) = 1[w.x + b > 0] on D = 5 inputs.
D = 5
W = np.array([0.8, -0.5, 0.3, 0.6, -0.4])
W_NORM = float(np.linalg.norm(W))
X0 = np.full(D, 0.5)


def linear_model(bias: float) -> torch.nn.Module:
    """Logits [-(w.x + b), w.x + b]: class 1 iff w.x + b > 0."""
    layer = torch.nn.Linear(D, 2)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(np.stack([-W, W]), dtype=torch.float32))
        layer.bias.copy_(torch.tensor([-bias, bias], dtype=torch.float32))
    return layer.eval()


def bias_for_distance(dist: float, x: np.ndarray = X0) -> float:
    """Bias b such that w.x + b = dist * ||w|| (x on the class-1 side at l2 distance dist)."""
    return dist * W_NORM - float(W @ x)


def exact_p1(x: np.ndarray, bias: float, sigma: float) -> float:
    """P[f(x + N(0, sigma^2 I)) = 1] in closed form."""
    return float(stats.norm.cdf((W @ x + bias) / (sigma * W_NORM)))


def slack(rate: float, trials: int) -> float:
    return 3.0 * math.sqrt(rate * (1.0 - rate) / trials)


# ---------------------------------------------------------------------------------------------- bounds


def test_cp_bounds_equal_scipy_exact_interval() -> None:
    for n in (1, 2, 7, 50, 333, 2000):
        ks = np.unique(np.linspace(0, n, 9).round().astype(int))
        for alpha in (0.001, 0.025, 0.1):
            lo = cp_lower(ks, n, alpha)
            hi = cp_upper(ks, n, alpha)
            assert lo.shape == hi.shape == ks.shape
            for i, k in enumerate(ks):
                ci = stats.binomtest(int(k), n).proportion_ci(confidence_level=1 - 2 * alpha, method="exact")
                assert lo[i] == pytest.approx(ci.low, abs=1e-12)
                assert hi[i] == pytest.approx(ci.high, abs=1e-12)
                assert isinstance(cp_lower(int(k), n, alpha), float)
    assert cp_lower(0, 10, 0.05) == 0.0 and cp_upper(10, 10, 0.05) == 1.0
    with pytest.raises(ValueError):
        cp_lower(11, 10, 0.05)


def test_cohen_spec_example() -> None:
    sigma = 0.5
    p_lower = cp_lower(99_990, 100_000, 0.001)
    assert p_lower == pytest.approx(0.99976, abs=1e-5)
    res = certify_from_counts(np.array([100, 0]), np.array([99_990, 10]), sigma, 0.001)
    assert res.prediction == 0
    assert res.radius / sigma == pytest.approx(3.49, abs=0.01)
    assert res.p_lower == pytest.approx(p_lower)


def test_min_samples_for_radius() -> None:
    for alpha in (0.5, 0.25, 0.1, 0.01, 0.001, 1e-6):
        n = min_samples_for_radius(alpha)
        assert cp_lower(n, n, alpha) > 0.5
        assert n == 1 or cp_lower(n - 1, n - 1, alpha) <= 0.5
        assert certify_from_counts(np.array([0, 1]), np.array([0, n]), 1.0, alpha).radius > 0
    assert min_samples_for_radius(0.001) == 10
    assert min_samples_for_radius(0.125) == 4  # boundary case: 0.125**(1/3) == 0.5 exactly


# -------------------------------------------------------------------------------------------- sampling


def test_point_generator_is_deterministic_and_separates_streams() -> None:
    def draw(g: torch.Generator) -> torch.Tensor:
        return torch.rand(8, generator=g)

    assert torch.equal(draw(point_generator(3, 17)), draw(point_generator(3, 17)))
    others = [point_generator(3, 18), point_generator(4, 17), point_generator(3, 17, stream=1)]
    for g in others:
        assert not torch.equal(draw(point_generator(3, 17)), draw(g))


@pytest.mark.parametrize("noise", [GaussianNoise(0.3), UniformLinfBall(0.2), UniformL2Ball(0.4)])
def test_noise_and_counts_do_not_depend_on_chunking(noise) -> None:
    shape = (D,)
    whole = noise.sample(shape, 50, point_generator(0, 5))
    g = point_generator(0, 5)
    parts = torch.cat([noise.sample(shape, m, g) for m in (1, 3, 16, 30)])
    assert torch.equal(whole, parts)

    model = linear_model(bias_for_distance(0.05))
    x = torch.tensor(X0, dtype=torch.float32)
    results = [
        count_classes(model, x, 777, noise, 2, bs, point_generator(1, 9), clamp=True) for bs in (1000, 64, 7)
    ]
    assert results[0].dtype == np.int64 and results[0].sum() == 777
    assert 0 < results[0][0] < 777  # the counts are not trivially constant
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])


def test_count_classes_respects_batch_size_and_clamp() -> None:
    seen: list[torch.Tensor] = []

    def spy(batch: torch.Tensor) -> torch.Tensor:
        seen.append(batch.clone())
        return torch.stack([-batch.sum(1), batch.sum(1)], dim=1)

    x = torch.full((D,), 0.95)
    count_classes(spy, x, 100, GaussianNoise(0.5), 2, 30, point_generator(0, 0), clamp=True)
    assert [b.shape[0] for b in seen] == [30, 30, 30, 10]
    allb = torch.cat(seen)
    assert allb.min() >= 0.0 and allb.max() <= 1.0 and (allb == 1.0).any()
    seen.clear()
    count_classes(spy, x, 100, GaussianNoise(0.5), 2, 100, point_generator(0, 0), clamp=False)
    assert torch.cat(seen).max() > 1.0


def test_gaussian_noise_distribution() -> None:
    z = GaussianNoise(0.3).sample((4, 5), 2000, point_generator(2, 0)).numpy()
    assert z.shape == (2000, 4, 5)
    assert stats.kstest(z.ravel() / 0.3, "norm").pvalue > 0.001
    corr = np.corrcoef(z.reshape(2000, -1), rowvar=False)
    assert np.abs(corr - np.eye(20)).max() < 0.12  # independent coordinates


def test_uniform_linf_ball_distribution() -> None:
    eps = 0.1
    d = UniformLinfBall(eps).sample((3, 4), 2000, point_generator(2, 1)).numpy()
    assert d.shape == (2000, 3, 4)
    assert np.abs(d).max() <= eps
    assert stats.kstest(d.ravel(), stats.uniform(loc=-eps, scale=2 * eps).cdf).pvalue > 0.001
    assert stats.kstest(d[:, 0, 0], stats.uniform(loc=-eps, scale=2 * eps).cdf).pvalue > 0.001


def test_uniform_l2_ball_distribution() -> None:
    eps, dim, n = 0.5, 12, 5000
    d = UniformL2Ball(eps).sample((3, 4), n, point_generator(2, 2)).numpy().reshape(n, dim).astype(np.float64)
    norms = np.linalg.norm(d, axis=1)
    assert norms.max() <= eps * (1 + 1e-6)
    assert stats.kstest(norms / eps, lambda r: np.clip(r, 0, 1) ** dim).pvalue > 0.001
    u = d / norms[:, None]
    assert np.abs(u.mean(0)).max() < 5 / math.sqrt(n * dim)  # isotropic: E u = 0
    np.testing.assert_allclose(u.T @ u / n, np.eye(dim) / dim, atol=0.02)  # E u u^T = I / D


# ------------------------------------------------------------------------------------- Cohen smoothing


def test_smooth_torch_pass_on_linear_model() -> None:
    sigma, dist = 0.25, 0.3
    bias = bias_for_distance(dist)
    p_true = exact_p1(X0, bias, sigma)
    assert p_true == pytest.approx(stats.norm.cdf(dist / sigma))
    smooth = Smooth(linear_model(bias), num_classes=2, sigma=sigma, batch_size=400)
    x = torch.tensor(X0, dtype=torch.float32)
    n = 4000
    counts0, counts = smooth.certify_counts(x, 100, n, point_generator(7, 0))
    assert counts0.sum() == 100 and counts.sum() == n
    assert abs(counts[1] / n - p_true) < 5 * math.sqrt(p_true * (1 - p_true) / n)
    pred, radius, p_lower = smooth.certify(x, 100, n, 0.001, point_generator(7, 0))
    assert (pred, radius, p_lower) == certify_from_counts(counts0, counts, sigma, 0.001)
    assert pred == 1 and 0 < radius < dist and p_lower < p_true
    assert smooth.predict(x, 1000, 0.001, point_generator(7, 1)) == 1
    # on the decision boundary the two classes are balanced: PREDICT abstains
    on_boundary = Smooth(linear_model(bias_for_distance(0.0)), 2, sigma)
    assert on_boundary.predict(x, 200, 0.001, point_generator(7, 2)) == ABSTAIN


def _simulate_certify(p1: float, n0: int, n: int, alpha: float, sigma: float, trials: int, seed: int):
    rng = np.random.default_rng(seed)
    sel = rng.binomial(n0, p1, size=trials)
    est = rng.binomial(n, p1, size=trials)
    out = [
        certify_from_counts(np.array([n0 - s, s]), np.array([n - e, e]), sigma, alpha)
        for s, e in zip(sel, est, strict=True)
    ]
    preds = np.array([o.prediction for o in out])
    radii = np.array([o.radius for o in out])
    return preds, radii


def test_cohen_radius_exceeds_true_distance_at_most_alpha() -> None:
    sigma, dist, alpha, trials = 0.5, 0.6, 0.05, 4000
    p1 = exact_p1(X0, bias_for_distance(dist), sigma)
    preds, radii = _simulate_certify(p1, 20, 1000, alpha, sigma, trials, seed=11)
    # a certificate is wrong if it names the wrong class or claims more than the distance to the boundary
    wrong = np.mean((preds == 0) | ((preds == 1) & (radii > dist)))
    assert wrong <= alpha + slack(alpha, trials)
    assert wrong > alpha / 4  # the bound is not vacuous: it is nearly tight


def test_cohen_mean_radius_approaches_true_distance() -> None:
    sigma, dist, alpha = 0.5, 0.6, 0.001
    p1 = exact_p1(X0, bias_for_distance(dist), sigma)
    gaps = []
    for n in (100, 1000, 10_000):
        _, radii = _simulate_certify(p1, 20, n, alpha, sigma, 300, seed=n)
        gaps.append(dist - radii.mean())
    assert gaps[0] > gaps[1] > gaps[2] > 0
    assert gaps[2] < 0.05 * dist


def test_certified_radius_is_sound_with_exact_probabilities() -> None:
    sigma, dist, alpha = 0.25, 0.4, 0.001
    bias = bias_for_distance(dist)
    p1 = exact_p1(X0, bias, sigma)
    rng = np.random.default_rng(3)
    direction = -W / W_NORM  # towards the decision boundary
    for _ in range(20):
        n = 2000
        k = rng.binomial(n, p1)
        res = certify_from_counts(np.array([0, 5]), np.array([n - k, k]), sigma, alpha)
        assert res.prediction == 1 and res.radius > 0
        moved = X0 + 0.99 * res.radius * direction
        assert exact_p1(moved, bias, sigma) > 0.5
    # sanity check of the closed form: beyond the true distance the smoothed prediction flips
    assert exact_p1(X0 + 1.01 * dist * direction, bias, sigma) < 0.5


def test_predict_from_counts() -> None:
    assert predict_from_counts(np.array([3, 90, 7]), 0.001) == 1
    assert predict_from_counts(np.array([48, 52, 0]), 0.05) == ABSTAIN
    p = stats.binomtest(60, 100, 0.5).pvalue
    assert predict_from_counts(np.array([40, 0, 60]), p) == 2
    assert predict_from_counts(np.array([40, 0, 60]), p * 0.99) == ABSTAIN


# ---------------------------------------------------------------------------------------------- mixed


def test_confidence_bounds_split_and_coverage() -> None:
    counts = np.array([700, 200, 80, 20])
    alpha = 0.01
    p_lo, p_up = confidence_bounds(counts, 0, alpha)
    assert p_lo == pytest.approx(cp_lower(700, 1000, alpha / 2))
    assert p_up == pytest.approx(min(1 - p_lo, cp_upper(200, 1000, alpha / 6)))
    # two classes: the Bonferroni bound on the other class is exactly 1 - p_y_lower
    p_lo2, p_up2 = confidence_bounds(np.array([900, 100]), 0, alpha)
    assert p_up2 == pytest.approx(1 - p_lo2)
    # joint coverage: P(p_y >= lower and max_other <= upper) >= 1 - alpha
    p = np.array([0.5, 0.3, 0.15, 0.05])
    alpha, trials = 0.2, 2000
    rng = np.random.default_rng(5)
    fails = 0
    for c in rng.multinomial(300, p, size=trials):
        lo, up = confidence_bounds(c, 0, alpha)
        fails += (lo > p[0]) or (up < p[1:].max())
    assert fails / trials <= alpha + slack(alpha, trials)


def test_mixed_rs_radius_at_alpha_one_is_cohen_two_sided() -> None:
    sigma, alpha = 0.5, 0.001
    for counts in (np.array([8000, 2000]), np.array([60, 9000, 940]), np.array([100, 5000, 4900])):
        y = int(np.argmax(counts))
        res = certify_mixed(counts, counts, 1.0, sigma, alpha)
        p_a_low = cp_lower(counts[y], counts.sum(), alpha / 2)
        others = np.delete(counts, y)
        p_b_up = min(1 - p_a_low, cp_upper(others, counts.sum(), alpha / (2 * len(others))).max())
        expected = max(0.0, sigma / 2 * (stats.norm.ppf(p_a_low) - stats.norm.ppf(p_b_up)))
        assert res.radius_rs == pytest.approx(expected, rel=1e-12, abs=1e-15)
        assert (res.prediction == y) == (expected > 0)
    # two classes: sigma/2 (Phi^-1(p) - Phi^-1(1 - p)) = sigma Phi^-1(p), Cohen's radius at level alpha/2
    res = certify_mixed(np.array([1, 9]), np.array([300, 9700]), 1.0, sigma, alpha)
    cohen = certify_from_counts(np.array([1, 9]), np.array([300, 9700]), sigma, alpha / 2)
    assert res.radius_rs == pytest.approx(cohen.radius, rel=1e-12)


def test_mixed_radii_vanish_below_margin_threshold() -> None:
    sigma = 0.5
    for a in (0.5, 0.6, 0.8, 0.95, 1.0):
        threshold = (1 - a) / a  # both radii are positive iff p_y - p_other > (1 - a) / a
        for p_o in (0.0, 0.05, 0.2):
            for delta, positive in ((-0.01, False), (0.0, False), (0.01, True)):
                p_y = p_o + threshold + delta
                if not 0 <= p_y <= 1 or p_y + p_o > 1:
                    continue
                r_rs = mixed_rs_radius(p_y, p_o, a, sigma)
                r_lip = mixed_lipschitz_radius(p_y, p_o, a, sigma)
                if positive:
                    assert r_rs > 0 and r_lip > 0
                else:
                    assert r_rs == pytest.approx(0.0, abs=1e-9) and r_lip == pytest.approx(0.0, abs=1e-9)
    assert mixed_rs_radius(0.99, 0.0, 0.45, sigma) == 0.0
    assert mixed_lipschitz_radius(0.99, 0.0, 0.45, sigma) == 0.0
    assert certify_mixed(np.array([0, 10]), np.array([0, 10**5]), 0.4, sigma, 0.001).prediction == ABSTAIN


def test_mixed_rs_dominates_lipschitz() -> None:
    # r_RS >= 2 a r_Lip for a in [1/2, 1] (slope of Phi^{-1} is at least sqrt(2 pi)); check on a grid
    p_y, p_o = np.meshgrid(np.linspace(0, 1, 81), np.linspace(0, 1, 81))
    keep = p_y + p_o <= 1
    for a in np.linspace(0.5, 1.0, 11):
        r_rs = mixed_rs_radius(p_y[keep], p_o[keep], float(a), 0.7)
        r_lip = mixed_lipschitz_radius(p_y[keep], p_o[keep], float(a), 0.7)
        assert np.all(r_rs >= 2 * a * r_lip - 1e-12)
        assert np.all(r_rs >= 0) and np.all(r_lip >= 0)


def test_mixed_certificate_is_sound_with_exact_probabilities() -> None:
    # Worst-case standard model (all its probability on the other class): the mixed classifier
    # predicts y at x' iff a p_y(x') > a p_other(x') + 1 - a.
    sigma, dist, alpha = 0.5, 0.8, 0.001
    bias = bias_for_distance(dist)
    p1 = exact_p1(X0, bias, sigma)
    rng = np.random.default_rng(8)
    direction = -W / W_NORM
    for a in (0.6, 0.8, 1.0):
        for _ in range(5):
            n = 5000
            k = rng.binomial(n, p1)
            cert = certify_mixed(np.array([1, 9]), np.array([n - k, k]), a, sigma, alpha)
            assert cert.prediction == 1 and cert.radius_rs > 0
            assert cert.radius_rs >= cert.radius_lipschitz > 0
            moved = X0 + 0.99 * cert.radius_rs * direction
            q = exact_p1(moved, bias, sigma)
            assert a * q > a * (1 - q) + 1 - a
        # Here the worst-case mixed classifier predicts 1 iff p_1 > 1/(2a), i.e. on the ball of radius
        # dist - sigma Phi^{-1}(1/(2a)); Theorem 2 with exact probabilities stays below it, tight at a = 1.
        true_radius = dist - sigma * stats.norm.ppf(1 / (2 * a))
        r_exact = mixed_rs_radius(p1, 1 - p1, a, sigma)
        assert r_exact <= true_radius + 1e-9
        if a == 1.0:
            assert r_exact == pytest.approx(dist, rel=1e-9)


def test_certify_mixed_uses_selection_counts_and_checks_mixed_prediction() -> None:
    counts = np.array([100, 9800, 100])
    cert = certify_mixed(np.array([0, 10, 0]), counts, 0.8, 0.5, 0.001)
    assert cert.prediction == 1 and cert.radius_rs > 0
    assert certify_mixed(np.array([10, 0, 0]), counts, 0.8, 0.5, 0.001).prediction == ABSTAIN
    refused = certify_mixed(np.array([0, 10, 0]), counts, 0.8, 0.5, 0.001, mixed_pred=2)
    assert refused.prediction == ABSTAIN and refused.radius_rs == 0.0 and refused.radius_lipschitz == 0.0
    assert mixed_prediction_agrees([0.1, 2.0, -1.0], 1) and not mixed_prediction_agrees([0.1, 2.0, 3.0], 1)


# --------------------------------------------------------------------------------------- probabilistic


def test_fixed_test_decisions() -> None:
    assert fixed_test(1000, 1000, 0.01, 0.01) == Outcome.ROBUST
    assert fixed_test(500, 1000, 0.01, 0.01) == Outcome.NOT_ROBUST
    assert fixed_test(990, 1000, 0.01, 0.01) == Outcome.UNDECIDED
    assert fixed_test(100, 100, 0.01, 0.01) == Outcome.UNDECIDED  # 0.01**(1/100) < 0.99


def test_sequential_design() -> None:
    kappa, alpha = 0.01, 0.01
    test = SequentialTest(kappa, alpha, 10_000)
    looks, levels = test.looks, test.levels
    assert looks == sorted(set(looks)) and looks[-1] == 10_000 and len(levels) == len(looks)
    assert sum(levels) <= alpha and levels[0] == pytest.approx(test.first_look_share * alpha)
    n1 = looks[0]
    assert cp_lower(n1, n1, levels[0]) > 1 - kappa >= cp_lower(n1 - 1, n1 - 1, levels[0])
    k_rob, k_not = test.critical_counts()
    for j, n in enumerate(looks):
        for k in {int(k_rob[j]) - 1, int(k_rob[j]), int(k_not[j]), int(k_not[j]) + 1}:
            if not 0 <= k <= n:
                continue
            d = test.decide(k, n)
            if k >= k_rob[j]:
                assert d == Outcome.ROBUST
            elif k <= k_not[j]:
                assert d == Outcome.NOT_ROBUST
            else:
                assert d == (Outcome.UNDECIDED if n == looks[-1] else None)
    with pytest.raises(ValueError):
        test.decide(5, looks[0] + 1)
    with pytest.raises(ValueError):
        SequentialTest(kappa, alpha, 100)  # even a perfect run of 100 samples cannot certify


def _simulated_certification_rate(rule, p: float, inputs: int, seed: int) -> float:
    """Vectorised run of a look-based rule on `inputs` Bernoulli(p) oracles; fraction certified."""
    rng = np.random.default_rng(seed)
    looks = np.asarray(rule.looks)
    k_rob, k_not = rule.critical_counts()
    increments = np.diff(np.concatenate([[0], looks]))
    k = np.cumsum(rng.binomial(increments, p, size=(inputs, len(looks))), axis=1)
    robust, not_robust = k >= k_rob, k <= k_not
    decided = robust | not_robust
    first = np.where(decided.any(axis=1), decided.argmax(axis=1), len(looks) - 1)
    return float(robust[np.arange(inputs), first].mean())


KAPPA, ALPHA, N_MAX, INPUTS = 0.01, 0.01, 10_000, 20_000
BOUND = ALPHA + slack(ALPHA, INPUTS)


def test_false_certification_rate_fixed_test() -> None:
    rng = np.random.default_rng(21)
    k = rng.binomial(N_MAX, 1 - KAPPA, size=INPUTS)
    decision = {int(v): fixed_test(int(v), N_MAX, KAPPA, ALPHA) for v in np.unique(k)}
    rate = float(np.mean([decision[int(v)] == Outcome.ROBUST for v in k]))
    assert rate <= BOUND


def test_false_certification_rate_sequential_test() -> None:
    rate = _simulated_certification_rate(SequentialTest(KAPPA, ALPHA, N_MAX), 1 - KAPPA, INPUTS, seed=22)
    assert rate <= BOUND


def _one_sided_bound(alpha: float, inputs: int) -> float:
    """Upper 1 - 1e-4 quantile of the false-certification rate of a test whose rate is exactly alpha.

    A valid test (rate <= alpha) fails this check with probability <= 1e-4; a rate of 1.5 alpha is caught
    with probability > 0.99 at 20,000 inputs and alpha = 0.01.
    """
    return float(stats.binom.ppf(1 - 1e-4, inputs, alpha)) / inputs


@pytest.mark.parametrize("share", [0.5, 0.9, 0.99])
@pytest.mark.parametrize("n_max", [1000, 10_000])
def test_unequal_alpha_spending_controls_false_certification(share: float, n_max: int) -> None:
    """At the boundary p = 1 - kappa, over 20,000 simulated inputs: rate <= alpha (sum of the looks' levels)."""
    test = SequentialTest(KAPPA, ALPHA, n_max, first_look_share=share)
    assert sum(test.levels) <= ALPHA and len(test.looks) > 1
    rate = _simulated_certification_rate(test, 1 - KAPPA, INPUTS, seed=int(share * 100) + n_max)
    assert rate <= _one_sided_bound(ALPHA, INPUTS), (share, n_max, rate)


def _exact_certification_probability(rule, p: float) -> float:
    """P(the rule certifies) for i.i.d. Bernoulli(p) samples, exactly: the count's law is propagated look by look."""
    k_rob, k_not = rule.critical_counts()
    law, previous, certified = np.array([1.0]), 0, 0.0
    for j, n in enumerate(rule.looks):
        law = np.convolve(law, stats.binom.pmf(np.arange(n - previous + 1), n - previous, p))
        k = np.arange(law.size)
        certified += float(law[k >= k_rob[j]].sum())
        law = np.where((k >= k_rob[j]) | (k <= k_not[j]), 0.0, law)
        previous = n
    return certified


@pytest.mark.parametrize("kappa, alpha, n_max", [(0.01, 0.01, 1000), (0.01, 0.01, 10_000), (0.05, 0.001, 2000),
                                                 (0.1, 0.05, 500)])
def test_false_certification_probability_is_at_most_alpha_exactly(kappa: float, alpha: float, n_max: int) -> None:
    for share in (0.5, 0.9, 0.99):
        test = SequentialTest(kappa, alpha, n_max, first_look_share=share)
        # at the boundary (the worst case) and just below it, where a certification is false
        for p in (1 - kappa, 1 - 1.2 * kappa):
            assert _exact_certification_probability(test, p) <= alpha * (1 + 1e-9), (share, p, test)
    # the exact computation agrees with the naive test's inflation (a check of the check)
    assert _exact_certification_probability(NaiveSequentialTest(kappa, alpha, n_max, step=n_max // 20),
                                            1 - kappa) > alpha


def test_one_sided_bound_catches_an_inflated_rate() -> None:
    rng = np.random.default_rng(8)
    caught = rng.binomial(INPUTS, 1.5 * ALPHA, size=2000) / INPUTS > _one_sided_bound(ALPHA, INPUTS)
    assert caught.mean() > 0.98


@pytest.mark.parametrize("kappa, alpha", [(0.01, 0.01), (0.01, 0.001), (0.05, 0.01), (0.001, 0.01)])
def test_clear_cases_decide_near_the_floor(kappa: float, alpha: float) -> None:
    """A run in which every sample agrees certifies at the first look, within 1.05x of ln(alpha) / ln(1 - kappa)."""
    floor = math.log(alpha) / math.log(1 - kappa)
    assert SequentialTest.floor(kappa, alpha) == math.floor(floor) + 1  # 459 for kappa = alpha = 0.01
    n_max = 20 * math.ceil(floor)
    test = SequentialTest(kappa, alpha, n_max)
    assert test.looks[0] <= 1.05 * floor
    assert run_sequential(lambda m: m, test) == (Outcome.ROBUST, test.looks[0])
    # a run in which every sample disagrees is declared not robust at the same look
    assert run_sequential(lambda m: 0, test) == (Outcome.NOT_ROBUST, test.looks[0])
    # no valid test can certify before the floor: the fixed test at n = floor - 1 and the full alpha cannot
    assert fixed_test(SequentialTest.floor(kappa, alpha) - 1, SequentialTest.floor(kappa, alpha) - 1, kappa,
                      alpha) != Outcome.ROBUST


def test_default_share_is_closer_to_the_floor_than_equal_spending() -> None:
    test = SequentialTest(0.01, 0.01, 1000)
    assert test.looks == [469, 938, 1000] and SequentialTest.floor(0.01, 0.01) == 459
    # Bonferroni over the same two looks (alpha/2 each) would need 528 samples at the first look
    assert cp_lower(527, 527, 0.005) <= 0.99 < cp_lower(528, 528, 0.005)
    # a cap below the first look leaves one look at n_max with the full alpha: the fixed test
    single = SequentialTest(0.01, 0.01, 465)
    assert single.looks == [465] and single.levels == [0.01]
    with pytest.raises(ValueError, match="first_look_share"):
        SequentialTest(0.01, 0.01, 1000, first_look_share=1.0)


def test_naive_per_look_testing_inflates_false_certifications() -> None:
    naive = NaiveSequentialTest(KAPPA, ALPHA, N_MAX, step=100)
    rate = _simulated_certification_rate(naive, 1 - KAPPA, INPUTS, seed=23)
    assert rate > 2 * ALPHA


@pytest.mark.parametrize(
    "p, expected", [(1.0, Outcome.ROBUST), (0.5, Outcome.NOT_ROBUST), (0.95, Outcome.NOT_ROBUST)]
)
def test_sequential_test_saves_samples_on_clear_cases(p: float, expected: Outcome) -> None:
    n_max = 100_000
    test = SequentialTest(0.01, 0.001, n_max)
    rng = np.random.default_rng(31)
    for _ in range(20):
        outcome, used = run_sequential(lambda m: int(rng.binomial(m, p)), test)
        assert outcome == expected
        assert used <= n_max // 10
    # the naive driver runs too (documentation only)
    outcome, used = naive_sequential_test(lambda m: int(rng.binomial(m, p)), 0.01, 0.001, 2000, step=200)
    assert outcome in (expected, Outcome.UNDECIDED)


@pytest.mark.parametrize("norm, eps", [("linf", 0.05), ("l2", 0.1)])
def test_certify_probabilistic_on_linear_model(norm: str, eps: float) -> None:
    x = torch.tensor(X0, dtype=torch.float32)
    far = linear_model(bias_for_distance(1.0))  # the whole eps-ball lies on the class-1 side
    outcome, k, used = certify_probabilistic(
        far, x, 1, eps, norm, 0.01, 0.001, 20_000, point_generator(9, 0), batch_size=256
    )
    assert outcome == Outcome.ROBUST and k == used < 20_000
    fixed = certify_probabilistic(
        far, x, 1, eps, norm, 0.01, 0.001, 2_000, point_generator(9, 0), batch_size=256, test="fixed"
    )
    assert fixed == (Outcome.ROBUST, 2_000, 2_000)
    boundary = linear_model(bias_for_distance(0.0))  # about half the ball is misclassified
    runs = [
        certify_probabilistic(
            boundary, x, 1, eps, norm, 0.01, 0.001, 20_000, point_generator(9, 1), batch_size=bs
        )
        for bs in (1000, 33)
    ]
    assert runs[0] == runs[1]
    outcome, k, used = runs[0]
    assert outcome == Outcome.NOT_ROBUST and used < 20_000 and 0.3 < k / used < 0.7
    with pytest.raises(ValueError):
        certify_probabilistic(far, x, 1, eps, "l1", 0.01, 0.001, 2000, point_generator(9, 2))
