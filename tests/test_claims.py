"""The claims table: statistics, verdicts that follow the evidence, Holm's correction, seeds, missing records."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd
import pytest

from tradeoff.claims import (
    CLAIM_COLUMNS,
    VERDICTS,
    ClaimOptions,
    Evidence,
    bootstrap_interval,
    claims_frame,
    decide,
    evaluate_claims,
    holm,
    magnitude,
    mcnemar_min_pvalue,
    mcnemar_pvalue,
    proportion_interval,
    read_choices,
    render_choices,
    render_markdown,
)
from tradeoff.claims.mixing import equal_clean_advantage
from tradeoff.claims.table import inconsistent
from tradeoff.io import write_records

N = 360
T = "linf-0.3"
FAST = ClaimOptions(resamples=500, simulations=4000)


def attack(clean: np.ndarray, robust: np.ndarray, seed: int = 0) -> pd.DataFrame:
    """Attack records (tradeoff.attacks.evaluate.RECORD_COLUMNS) with given clean / attacked correctness per point."""
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 10, size=len(clean))
    wrong = (label + 1) % 10
    robust = np.asarray(robust, bool) & np.asarray(clean, bool)
    return pd.DataFrame({"index": np.arange(len(clean)), "label": label,
                         "clean_prediction": np.where(clean, label, wrong),
                         "prediction": np.where(robust, label, wrong), "correct": robust.astype(int),
                         "perturbation": 0.3})


def first(k: int, n: int = N) -> np.ndarray:
    """Indicator of the first k of n points."""
    return np.arange(n) < k


def rows_by_id(rows: list[dict]) -> dict[str, dict]:
    assert not inconsistent(rows), inconsistent(rows)  # every table a test builds: verdicts follow the intervals
    return {r["id"]: r for r in rows}


def verdict(recs: dict, cid: str, summary: pd.DataFrame | None = None) -> dict:
    return rows_by_id(evaluate_claims(recs, summary, FAST))[cid]


# -------------------------------------------------------------------------------------------- statistics


def ev(estimate: float, lo: float, hi: float, p: float = 0.001, min_p: float = 0.0) -> Evidence:
    return Evidence(estimate, (lo, hi), p, min_p, (estimate,))


def test_verdicts_follow_the_interval_the_adjusted_p_and_the_design() -> None:
    assert decide(ev(0.05, 0.01, 0.09)) == "reproduced"
    assert decide(ev(-0.05, -0.09, -0.01)) == "contradicted"  # excludes 0 in the wrong direction
    assert decide(ev(-0.05, -0.09, -0.01), direction=-1) == "reproduced"
    assert decide(ev(0.05, -0.01, 0.09, p=0.2)) == "inconclusive"  # covers 0: never a verdict on the sign
    assert decide(ev(-0.02, -0.05, 0.01, p=0.3)) == "inconclusive"
    assert decide(ev(0.05, 0.01, 0.09), adjusted=0.2) == "inconclusive"  # significant only before Holm
    assert decide(ev(0.0, 0.0, 0.0, p=1.0, min_p=0.125)) == "not testable"  # 4 points could differ at most
    assert decide(ev(0.05, 0.01, 0.09, min_p=0.06)) == "not testable"
    assert decide(None) == "not testable"
    assert decide(ev(0.02, -0.01, 0.05), kind="bound") == "consistent"
    assert decide(ev(-0.05, -0.08, -0.02), kind="bound") == "contradicted"
    assert decide(ev(-0.05, -0.08, -0.02, p=0.3), kind="bound") == "consistent"  # not beyond sampling error
    assert decide(ev(0.04, 0.01, 0.07), kind="equal") == "contradicted"
    assert set(VERDICTS) == {"reproduced", "contradicted", "inconclusive", "not testable", "consistent"}


def test_smallest_attainable_mcnemar_p() -> None:
    assert mcnemar_min_pvalue(4) == pytest.approx(0.125)
    assert mcnemar_min_pvalue(5) == pytest.approx(0.0625) and mcnemar_min_pvalue(6) < 0.05
    for k in range(1, 9):  # reached when all k pairs are discordant one way
        assert mcnemar_pvalue(np.ones(k), np.zeros(k)) == pytest.approx(mcnemar_min_pvalue(k))


def test_holm_matches_a_hand_computation() -> None:
    # sorted 0.005, 0.01, 0.03, 0.04 -> 4·0.005, 3·0.01, 2·0.03, max(0.06, 1·0.04)
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    out = holm([0.01, float("nan"), 0.02])  # NaN is not in the family: m = 2
    assert out[0] == pytest.approx(0.02) and np.isnan(out[1]) and out[2] == pytest.approx(0.02)
    assert holm([0.01, 0.5]) == pytest.approx([0.02, 0.5]) and holm([0.9, 0.8]) == pytest.approx([1.0, 1.0])


def test_holm_equals_closed_testing_with_bonferroni() -> None:
    # Holm is the closed-testing shortcut: p_adj(i) = max over sets J ∋ i of min(1, |J| · min_{j∈J} p_j)
    rng = np.random.default_rng(0)
    for _ in range(30):
        p = rng.uniform(0, 0.2, 6)
        ref = [max(min(1.0, len(J) * min(p[list(J)])) for k in range(1, 7)
                   for J in itertools.combinations(range(6), k) if i in J) for i in range(6)]
        assert holm(p) == pytest.approx(ref)


def test_holm_controls_the_family_wise_error_by_simulation() -> None:
    rng = np.random.default_rng(1)
    rejected = [min(holm(rng.uniform(size=20))) < 0.05 for _ in range(4000)]
    assert np.mean(rejected) <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / 4000)


def test_mcnemar_counts_only_discordant_pairs() -> None:
    a = np.r_[np.ones(50), np.zeros(50)]
    assert mcnemar_pvalue(a, a) == 1.0
    b = a.copy()
    b[:10] = 0
    assert mcnemar_pvalue(a, b) == pytest.approx(2 / 2**10)


def test_exact_interval_covers_by_simulation() -> None:
    rng = np.random.default_rng(0)
    for p, n in ((0.3, 50), (0.97, 360)):
        hits = [lo <= p <= hi for lo, hi in (proportion_interval(int(k), n) for k in rng.binomial(n, p, 400))]
        assert np.mean(hits) >= 0.93


def test_paired_bootstrap_interval_covers_by_simulation() -> None:
    rng = np.random.default_rng(1)
    hits = []
    for sim in range(150):
        u = rng.random(N)
        d = (u < 0.85).astype(float) - (u < 0.80).astype(float)
        lo, hi = bootstrap_interval(lambda idx, d=d: d[idx].mean(axis=1), N, seed=sim, resamples=400)
        hits.append(lo <= 0.05 <= hi)
    assert np.mean(hits) >= 0.88


def test_magnitude_note() -> None:
    assert magnitude(0.616, 0.028) == "same direction, 22× smaller"
    assert magnitude(0.07, -0.01) == "opposite direction"
    assert magnitude(0.1, 0.11) == "same direction, similar size"
    assert magnitude(0.02, 0.05) == "same direction, 2.5× larger"
    assert magnitude(None, 0.03).startswith("the paper gives no number")


# ------------------------------------------------------------------------------------ verdicts from records


def test_adversarial_training_claim_follows_the_records() -> None:
    std = attack(first(350), np.zeros(N, bool))
    cid = f"tsipras-at-lowers-accuracy-pgd_at-{T}"
    row = verdict({("standard", "worst", T): std, ("pgd_at", "worst", T): attack(first(310), first(80))}, cid)
    assert row["verdict"] == "reproduced" and "97.2%" in row["our_value"] and "86.1%" in row["our_value"]
    assert row["seeds"] == "1 seed" and row["p_holm"] != "–"
    row = verdict({("standard", "worst", T): std, ("pgd_at", "worst", T): attack(first(348), first(80))}, cid)
    assert row["verdict"] == "inconclusive" and "claimed sign" in row["reason"]
    # the adversarially trained model is significantly MORE accurate: the claim is contradicted
    row = verdict({("standard", "worst", T): attack(first(300), first(0)),
                   ("pgd_at", "worst", T): attack(first(350), first(80))}, cid)
    assert row["verdict"] == "contradicted"


def test_a_claim_pools_over_training_seeds() -> None:
    std = attack(first(350), first(0))
    recs = {("standard", "worst", T, s): std for s in range(3)}
    for s, k in enumerate((310, 318, 305)):
        recs[("pgd_at", "worst", T, s)] = attack(first(k), first(80))
    row = verdict(recs, f"tsipras-at-lowers-accuracy-pgd_at-{T}")
    assert row["verdict"] == "reproduced" and row["seeds"].startswith("3 seeds: +8.9 points to +12.5")
    assert "seeds and test points" in row["reason"] and "training seeds 0, 1, 2" in row["our_setting"]
    # seeds that disagree in sign: the pooled interval carries the seed-to-seed spread and covers 0
    recs[("pgd_at", "worst", T, 1)] = attack(first(359), first(80))
    recs[("pgd_at", "worst", T, 2)] = attack(first(358), first(80))
    recs[("standard", "worst", T, 0)] = attack(first(340), first(0))
    assert verdict(recs, f"tsipras-at-lowers-accuracy-pgd_at-{T}")["verdict"] == "inconclusive"


def test_eps_trend_needs_two_budgets() -> None:
    recs = {("pgd_at", "worst", "linf-0.1"): attack(first(345), first(250)),
            ("pgd_at", "worst", T): attack(first(310), first(80))}
    row = verdict(recs, "tsipras-eps-trend-pgd_at")
    assert row["verdict"] == "reproduced" and "linf-0.1 vs linf-0.3" in row["our_setting"]
    assert "Figure 1" in row["source"] and "Theorem" not in row["source"]
    del recs[("pgd_at", "worst", "linf-0.1")]
    row = verdict(recs, "tsipras-eps-trend-pgd_at")
    assert row["verdict"] == "not testable" and "at least 2" in row["reason"]


SWEEP = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
PROB = ((352, 20), (350, 35), (347, 50), (342, 65), (333, 78), (325, 85))
LOGIT = ((353, 1), (351, 3), (348, 6), (343, 12), (335, 25), (327, 40))


def _sweep(prob=PROB, logit=LOGIT, modes=("prob", "logit")) -> dict:
    recs = {("standard", "worst", T): attack(first(355), first(0)),
            ("pgd_at", "worst", T): attack(first(310), first(90))}
    for mode, curve in (("prob", prob), ("logit", logit)):
        if mode in modes:
            for alpha, (clean, robust) in zip(SWEEP, curve, strict=True):
                recs[(f"mix-{mode}-{alpha:g}", "worst", T)] = attack(first(clean), first(robust))
    return recs


def test_equal_clean_advantage_interpolates_each_mode_on_the_other() -> None:
    base_c, base_r = [0.86, 0.986], [0.25, 0.0]
    pc, pr = np.array([*base_c, 0.95]), np.array([*base_r, 0.20])
    lc, lr = np.array([*base_c, 0.95, 0.97]), np.array([*base_r, 0.05, 0.01])
    est, k = equal_clean_advantage(pc, pr, np.array([0, 0, 1], bool), lc, lr, np.array([0, 0, 1, 1], bool))
    assert k == 3
    assert est == pytest.approx((0.15 + 0.15 + 0.2 * 0.016 / 0.036 - 0.01) / 3)


def test_mixing_claims_over_a_sweep_of_alphas_in_both_modes() -> None:
    rows = rows_by_id(evaluate_claims(_sweep(), options=FAST))
    assert rows[f"mixing-above-chord-{T}"]["verdict"] == "reproduced"
    assert rows[f"mixing-prob-vs-logit-{T}"]["verdict"] == "reproduced"
    assert "6 probability and 6 logit" in rows[f"mixing-prob-vs-logit-{T}"]["our_setting"]
    # α = 0.5 keeps 20 of h's 90 robust points: robustness is lost at α ≤ 1/2
    lost = rows[f"mixing-lost-below-half-{T}"]
    assert lost["verdict"] == "reproduced" and "α = 0.5" in lost["our_setting"]
    rows = rows_by_id(evaluate_claims(_sweep(prob=LOGIT, logit=PROB), options=FAST))
    assert rows[f"mixing-prob-vs-logit-{T}"]["verdict"] == "contradicted"
    chord = rows[f"mixing-above-chord-{T}"]  # below the chord, but not significantly after Holm's correction
    assert chord["verdict"] == "inconclusive" and "not after Holm" in chord["reason"]


def test_prob_vs_logit_is_not_testable_with_one_mode() -> None:
    row = verdict(_sweep(modes=("prob",)), f"mixing-prob-vs-logit-{T}")
    assert row["verdict"] == "not testable" and "only one mixing mode" in row["reason"]


def _margins(adv_margin_ok: float) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    clean_ok = first(330)
    return pd.DataFrame({"index": np.arange(N), "label": 0, "clean_correct": clean_ok.astype(int),
                         "clean_margin": np.where(clean_ok, 0.9, rng.uniform(0.1, 0.5, N)),
                         "adv_correct": first(200).astype(int), "adv_margin": np.where(first(200), adv_margin_ok, 0.1)})


def test_confidence_gap_uses_the_worst_case_attack() -> None:
    recs = {("pgd_at", "confidence", T): _margins(0.8), ("pgd_at", "worst", T): attack(first(330), first(90))}
    row = verdict(recs, f"mixing-confidence-gap-{T}")
    # right under the worst case: 90 points (not PGD-20's 200)
    assert row["verdict"] == "reproduced" and "(n = 90)" in row["our_value"] and "worst" in row["our_setting"]
    assert row["paper_effect"] == "+0.333" and "Table I" in row["source"]
    recs[("pgd_at", "confidence", T)] = _margins(0.05)
    assert verdict(recs, f"mixing-confidence-gap-{T}")["verdict"] == "contradicted"


def test_mixnet_against_the_curve_and_its_alpha() -> None:
    recs = {("standard", "worst", T): attack(first(355), first(0)),
            ("pgd_at", "worst", T): attack(first(310), first(90)),
            ("mix-prob-0.9", "worst", T): attack(first(342), first(10)),
            ("mix-prob-0.8", "worst", T): attack(first(351), first(0))}
    recs[("mixnet", "worst", T)] = attack(first(342), first(60))
    row = verdict(recs, f"mixnet-vs-fixed-{T}")
    assert row["verdict"] == "reproduced" and "RobustBench" not in row["paper_value"].split(";")[0]
    frame = attack(first(342), first(60))
    frame["alpha_clean"], frame["alpha_adaptive"] = 0.92, np.where(first(200), 0.99, 0.92)
    recs[("mixnet", "adaptive", T)] = frame
    assert verdict(recs, f"mixnet-raises-alpha-{T}")["verdict"] == "reproduced"
    frame["alpha_adaptive"] = 0.92
    assert verdict(recs, f"mixnet-raises-alpha-{T}")["verdict"] == "not testable"  # no variation at all


def _robustness(correct: np.ndarray, robust: np.ndarray, n: int = N, label: np.ndarray | None = None) -> pd.DataFrame:
    correct, robust = np.asarray(correct, bool), np.asarray(robust, bool)
    return pd.DataFrame({"index": np.arange(n), "label": 0 if label is None else label, "correct": correct.astype(int),
                         "robust": robust.astype(int), "robust_accurate": (correct & robust).astype(int),
                         "robust_inaccurate": (~correct & robust).astype(int)})


def test_robust_inaccuracy_with_two_misclassified_points_is_not_testable() -> None:
    wrong_two = ~first(2)[::-1]  # the last 2 points misclassified, robust
    recs = {("era", "robustness", T): _robustness(wrong_two, np.ones(N)),
            ("trades", "robustness", T): _robustness(wrong_two, np.ones(N))}
    row = verdict(recs, f"era-robust-inaccuracy-{T}")
    assert row["verdict"] == "not testable" and "allow is 0.5" in row["reason"]  # 2 points: at best p = 2·2^-2
    recs = {("era", "robustness", T): _robustness(first(300), first(300)),
            ("trades", "robustness", T): _robustness(first(300), np.ones(N))}
    assert verdict(recs, f"era-robust-inaccuracy-{T}")["verdict"] == "reproduced"


def _composite(correct: np.ndarray, robust_accurate: np.ndarray, inaccurate: int = 0) -> pd.DataFrame:
    return pd.DataFrame({"index": np.arange(N), "label": 0, "selected": robust_accurate.astype(int),
                         "correct": correct.astype(int), "robust_accurate": (robust_accurate & correct).astype(int),
                         "robust_inaccurate": (~correct & first(N - 355 + inaccurate)[::-1]).astype(int)})


def test_era_composite_gain_its_size_and_clean_cost() -> None:
    recs = {("standard", "worst", T): attack(first(355), first(0)),
            ("era-composite", "composite", T): _composite(first(355), first(20))}
    rows = rows_by_id(evaluate_claims(recs, options=FAST))
    gain = rows[f"era-composite-gain-{T}"]
    assert gain["verdict"] == "reproduced" and gain["paper_effect"] == "+61.6 points"
    assert gain["magnitude"] == "same direction, 11× smaller"
    assert rows[f"era-composite-clean-cost-{T}"]["verdict"] == "consistent"
    recs[("era-composite", "composite", T)] = _composite(first(320), first(120))
    assert verdict(recs, f"era-composite-clean-cost-{T}")["verdict"] == "contradicted"


def test_era_branch_is_judged_by_robust_inaccuracy() -> None:
    recs = {("era-composite", "composite", T): _composite(first(300), first(150), inaccurate=0),
            ("era-composite-trades", "composite", T): _composite(first(300), first(150), inaccurate=40)}
    row = verdict(recs, f"era-branch-vs-trades-{T}")
    assert row["verdict"] == "reproduced" and "Figure 1" in row["source"]


def test_era_figure_one_on_the_toy() -> None:
    n, label = 500, np.where(np.arange(500) < 20, 2, np.arange(500) % 2)  # class 2 is rare
    rare = label == 2
    recs = {("gauss3-standard", "robustness", "none"): _robustness(np.ones(n), ~first(60, n), n, label),
            ("gauss3-trades", "robustness", "none"): _robustness(~rare, np.ones(n), n, label),
            ("gauss3-era", "robustness", "none"): _robustness(~rare, ~rare, n, label)}
    rows = rows_by_id(evaluate_claims(recs, options=FAST))
    assert rows["era-fig1-standard"]["verdict"] == "reproduced"
    trades = rows["era-fig1-trades"]
    assert trades["verdict"] == "reproduced" and "100.0% of TRADES" in trades["our_value"]
    assert rows["era-fig1-era"]["verdict"] == "reproduced"
    comp = rows["era-fig1-composition"]
    assert comp["verdict"] == "reproduced" and "natural 100.0%" in comp["our_value"]


def _prob(certified: int, samples: int, n: int = 120) -> pd.DataFrame:
    ok = first(certified, n)
    return pd.DataFrame({"index": np.arange(n), "label": 1, "reference": 1,
                         "outcome": np.where(ok, "robust", "not_robust"), "samples": samples})


def test_probabilistic_claims_and_our_checks_of_the_test() -> None:
    recs = {("variance", "certify-prob-sequential", T): _prob(100, 469),
            ("standard", "certify-prob-sequential", T): _prob(60, 469),
            ("pgd_at", "certify-prob-sequential", T): _prob(98, 469),
            ("standard", "certify-prob-fixed", T): _prob(60, 1000)}
    rows = rows_by_id(evaluate_claims(recs, options=FAST))
    assert rows[f"prob-variance-vs-standard-{T}"]["verdict"] == "reproduced"
    assert rows[f"prob-variance-vs-pgd_at-{T}"]["verdict"] == "inconclusive"  # 2 points differ
    assert rows["prob-sequential-fewer-samples"]["section"] == "own"
    assert rows["prob-sequential-fewer-samples"]["our_effect"] == "+531 samples"
    per_look, ours = rows["prob-per-look-test"], rows["prob-group-sequential-test"]
    assert per_look["verdict"] == "contradicted" and per_look["section"] == "own"  # error > α, Theorem B.2 fails
    assert ours["verdict"] == "consistent"


def _exact(clean: int, robust: int) -> pd.DataFrame:
    return pd.DataFrame({"index": np.arange(N), "label": 1, "clean_correct": first(clean).astype(int),
                         "correct": first(robust).astype(int)})


def _theory(value_robust: float = 0.95) -> pd.DataFrame:
    row = {"dataset": "tsipras", "classifier": "tsipras-robust", "evaluation": "theory", "norm": "Linf", "n": 0}
    return pd.DataFrame([{**row, "eps": 0.0, "metric": "accuracy", "value": 0.95},
                         {**row, "eps": 0.3, "metric": "accuracy", "value": value_robust},
                         {**row, "eps": 0.3, "metric": "robust_bound", "value": 0.95}])


def test_tsipras_closed_forms_bounds_and_the_standard_model() -> None:
    recs = {("tsipras-robust", "exact", T): _exact(342, 342)}
    rows = rows_by_id(evaluate_claims(recs, _theory(), FAST))
    assert rows["tsipras-closed-forms"]["verdict"] == "consistent" and rows["tsipras-closed-forms"]["section"] == "own"
    assert rows["tsipras-theorem-2.1"]["verdict"] == "consistent"
    assert verdict(recs, "tsipras-closed-forms", _theory(0.80))["verdict"] == "contradicted"
    recs = {("tsipras-robust", "exact", T): _exact(357, 216)}  # 60% robust where the bound allows 19%
    assert verdict(recs, "tsipras-theorem-2.1", _theory())["verdict"] == "contradicted"
    recs = {("tsipras-standard", "exact", T): _exact(359, 0)}
    assert verdict(recs, "tsipras-standard-adversarial-accuracy")["verdict"] == "consistent"
    recs = {("tsipras-standard", "exact", T): _exact(359, 30)}
    assert verdict(recs, "tsipras-standard-adversarial-accuracy")["verdict"] == "contradicted"


def _rs(correct: int, radius: float) -> pd.DataFrame:
    ok = first(correct, 120)
    return pd.DataFrame({"index": np.arange(120), "label": 1, "prediction": np.where(ok, 1, -1),
                         "radius": np.where(ok, np.linspace(radius, 0.01, 120), 0.0)})


def test_randomized_smoothing_at_the_papers_radii() -> None:
    recs = {("gauss_aug-0.25", "certify-rs", "none"): _rs(110, 0.67),
            ("gauss_aug-0.5", "certify-rs", "none"): _rs(95, 1.6)}
    rows = rows_by_id(evaluate_claims(recs, options=FAST))
    assert rows["rs-falls-with-radius-gauss_aug-0.5"]["paper_value"] == "66.0% at r = 0 → 42.0% at r = 0.5"
    assert rows["rs-sigma-clean-cost"]["verdict"] == "reproduced"
    gain = rows["rs-sigma-large-radius-gain"]
    assert gain["verdict"] == "reproduced" and "r = 0.75" in gain["our_setting"] and "cannot certify" in gain["reason"]
    assert gain["paper_effect"] == "+7.0 points"
    del recs[("gauss_aug-0.5", "certify-rs", "none")]
    assert verdict(recs, "rs-sigma-large-radius-gain")["verdict"] == "not testable"


def _mixed(extra: int, alone_clean: int = 84) -> pd.DataFrame:
    """certify-mixed records of 120 points: the standard model right on all, the smoothed model alone (α = 1)
    right on ``alone_clean`` clean points and certified at r = 0.4 on 72; α = 0.9 right on 108 clean points and
    certified on 24 + ``extra``, which puts it ``extra`` points above the chord (at ``alone_clean`` = 84)."""
    parts = []
    for a, clean, k in ((0.9, 108, 24 + extra), (1.0, alone_clean, 72)):
        ok = first(k, 120)
        parts.append(pd.DataFrame({"index": np.arange(120), "label": 1, "alpha": a,
                                   "prediction": np.where(ok, 1, -1), "radius_rs": np.where(ok, 0.4, 0.0),
                                   "mixed_clean_prediction": np.where(first(clean, 120), 1, 0),
                                   "standard_prediction": 1}))
    return pd.concat(parts, ignore_index=True)


def test_mixed_classifier_against_the_chord_of_its_base_models() -> None:
    cid = "mixing-certified-above-chord-gauss_aug-0.25"
    key = ("gauss_aug-0.25", "certify-mixed", "none")
    row = verdict({key: _mixed(40)}, cid)
    assert row["verdict"] == "reproduced" and row["estimate"] == pytest.approx(40 / 120), row
    assert verdict({key: _mixed(-20)}, cid)["verdict"] == "contradicted"
    # a smoothed model as accurate as the standard one leaves the mixture nothing to regain, whatever it certifies
    row = verdict({key: _mixed(40, alone_clean=120)}, cid)
    assert row["verdict"] == "not testable" and "no clean accuracy for the mixture to regain" in row["reason"]
    # records from before the clean predictions were written: not testable, never a crash
    old = _mixed(40).drop(columns=["mixed_clean_prediction", "standard_prediction"])
    assert verdict({key: old}, cid)["verdict"] == "not testable"


# --------------------------------------------------------------------------------------- missing records, output


def test_missing_records_are_not_testable_never_a_crash(tmp_path) -> None:
    rows = evaluate_claims({}, None, FAST)
    own = {"prob-per-look-test", "prob-group-sequential-test"}
    assert all(r["verdict"] == "not testable" and r["reason"] for r in rows if r["id"] not in own)
    gone, broken = tmp_path / "gone.csv", tmp_path / "broken.csv"
    write_records(broken, attack(first(300), first(80)).to_dict("records"), {})
    broken.write_text(broken.read_text() + "1,2,3,4,5,6\n")
    row = verdict({("standard", "worst", T): gone, ("pgd_at", "worst", T): broken},
                  f"tsipras-at-lowers-accuracy-pgd_at-{T}")
    assert row["verdict"] == "not testable" and "standard" in row["reason"]


def test_no_claim_text_names_a_dataset(tmp_path) -> None:
    path = tmp_path / "results" / "cifar10" / "linf-0.3" / "eval" / "pgd_at.csv"
    path.parent.mkdir(parents=True)
    write_records(path, attack(first(310), first(80)).to_dict("records"), {})
    rows = evaluate_claims({("standard", "worst", T): attack(first(350), first(0)), ("pgd_at", "worst", T): path},
                           options=FAST)
    text = json.dumps(rows, ensure_ascii=False)
    assert "digits" not in text and "cifar10, standard → pgd_at" in text


def test_records_csv_markdown_and_choices(tmp_path) -> None:
    rows = evaluate_claims({("standard", "worst", T): attack(first(350), first(0)),
                            ("pgd_at", "worst", T): attack(first(310), first(80))}, options=FAST)
    frame = claims_frame(rows)
    assert list(frame.columns) == CLAIM_COLUMNS and set(frame["verdict"]) <= set(VERDICTS)
    (tmp_path / "budget.json").write_text(json.dumps(
        {"setting": "era.threats", "value": "0.1", "chosen_by": "a script", "split": "calibration",
         "alternative": "0.05", "alternative_gives": "less"}))
    md = render_markdown(rows, render_choices(read_choices(tmp_path)))
    assert "### Our own checks of the papers" in md and "### How this run was configured" in md
    assert "**contradicted**" in md and "| era.threats | 0.1 |" in md
    (tmp_path / "bad.json").write_text(json.dumps({"setting": "x"}))
    with pytest.raises(ValueError, match=r"bad\.json: key 'value'"):
        read_choices(tmp_path)


def test_command_reads_seeded_keys_and_the_choices(tmp_path) -> None:
    from tradeoff.cli import main

    paths = {}
    for seed, k in ((0, 310), (1, 315)):
        for name, clean in (("standard", 350), ("pgd_at", k)):
            paths[f"{name}|worst|{T}|{seed}"] = str(tmp_path / f"{name}-{seed}.csv")
            write_records(paths[f"{name}|worst|{T}|{seed}"], attack(first(clean), first(0)).to_dict("records"), {})
    pd.DataFrame(columns=["dataset", "classifier", "evaluation", "norm", "eps", "metric", "value", "n"]).to_csv(
        tmp_path / "summary.csv", index=False)
    choices = tmp_path / "choices"
    choices.mkdir()
    (choices / "eps.json").write_text(json.dumps(dict.fromkeys(
        ("setting", "value", "chosen_by", "split", "alternative", "alternative_gives"), "x")))
    assert main(["claims", "--records", json.dumps(paths), "--summary", str(tmp_path / "summary.csv"),
                 "--options", json.dumps({"resamples": 200, "simulations": 2000}), "--choices", str(choices),
                 "--out", str(tmp_path / "claims.csv")]) in (0, None)
    frame = pd.read_csv(tmp_path / "claims.csv").set_index("id")
    assert frame.loc[f"tsipras-at-lowers-accuracy-pgd_at-{T}", "seeds"].startswith("2 seeds")
    assert "### How this run was configured" in (tmp_path / "claims.md").read_text()


# ------------------------------------------------------------------------------- every claim over every seed


def _theory_seeds(robust: dict[int, float]) -> pd.DataFrame:
    """Closed-form rows of tsipras-robust per training seed (``seed`` column): its robust accuracy ``robust[s]``."""
    return pd.concat([_theory(value).assign(seed=seed) for seed, value in robust.items()], ignore_index=True)


def _trades_g3(rare_inaccurate: bool, n: int = 500) -> tuple[pd.DataFrame, np.ndarray]:
    """gauss3 robustness record of TRADES: robust everywhere, wrong on the 20 rare points or on 20 common ones."""
    label = np.where(np.arange(n) < 20, 2, np.arange(n) % 2)
    wrong = label == 2 if rare_inaccurate else (np.arange(n) >= 20) & (np.arange(n) < 40)
    return _robustness(~wrong, np.ones(n), n, label), label


def _per_seed_records(seeds: tuple[int, ...], disagree: bool) -> tuple[dict, pd.DataFrame]:
    """Records of the claims that once read one seed: the first seed as in the single-seed tests, the others
    (when ``disagree``) giving the opposite or a weaker result."""
    recs: dict = {}
    for i, s in enumerate(seeds):
        other = disagree and i > 0
        recs[("gauss_aug-0.25", "certify-mixed", "none", s)] = _mixed(-24 if other else 40)
        recs[("standard", "certify-prob-sequential", T, s)] = _prob(60, 900 if other else 469)
        recs[("standard", "certify-prob-fixed", T, s)] = _prob(60, 1000)
        recs[("tsipras-standard", "exact", T, s)] = _exact(330, 30) if other else _exact(359, 0)
        recs[("tsipras-adversarial", "exact", T, s)] = _exact(342, 342)
        recs[("tsipras-robust", "exact", T, s)] = _exact(357, 216) if other else _exact(342, 342)
        trades, label = _trades_g3(rare_inaccurate=not other)
        recs[("gauss3-trades", "robustness", "none", s)] = trades
        recs[("gauss3-standard", "robustness", "none", s)] = _robustness(np.ones(500), np.ones(500), 500, label)
        recs[("pgd_at", "worst", "linf-0.1", s)] = attack(first(345), first(250))
        recs[("pgd_at", "worst", T, s)] = attack(first(310), first(80))
    return recs, _theory_seeds({s: 0.80 if disagree and i > 0 else 0.95 for i, s in enumerate(seeds)})


POOLED = ["mixing-certified-above-chord-gauss_aug-0.25", "prob-sequential-fewer-samples", "tsipras-synthetic-at",
          "tsipras-standard-adversarial-accuracy", "tsipras-theorem-2.1", "tsipras-closed-forms",
          "tsipras-eps-trend-pgd_at"]
"""The claims that pool the seeds' records here (the rest are covered by the tests above)."""


def test_claims_pool_over_seeds_when_a_seed_disagrees() -> None:
    recs, summary = _per_seed_records((0, 1), disagree=True)
    both = rows_by_id(evaluate_claims(recs, summary, FAST))
    zero = rows_by_id(evaluate_claims({k: v for k, v in recs.items() if k[3] == 0}, summary, FAST))
    one = rows_by_id(evaluate_claims({(*k[:3], 0): v for k, v in recs.items() if k[3] == 1},
                                     summary[summary["seed"] == 1].assign(seed=0), FAST))
    for cid in POOLED[:4]:  # a pooled estimate is the mean of the seeds' estimates, its interval not seed 0's
        assert both[cid]["seeds"].startswith("2 seeds"), cid
        assert both[cid]["estimate"] == pytest.approx((zero[cid]["estimate"] + one[cid]["estimate"]) / 2), cid
        assert (both[cid]["low"], both[cid]["high"]) != (zero[cid]["low"], zero[cid]["high"]), cid
        assert "training seeds 0, 1" in both[cid]["our_setting"], cid
    # the verdicts that held on seed 0 alone do not hold across the seeds
    assert zero["mixing-certified-above-chord-gauss_aug-0.25"]["verdict"] == "reproduced"
    assert both["mixing-certified-above-chord-gauss_aug-0.25"]["verdict"] != "reproduced"
    assert both["prob-sequential-fewer-samples"]["estimate"] == pytest.approx((531 + 100) / 2)
    assert zero["tsipras-standard-adversarial-accuracy"]["verdict"] == "consistent"
    assert both["tsipras-standard-adversarial-accuracy"]["our_value"].startswith("4.2% adversarial accuracy")
    # bounds and closed forms must hold for every seed: seed 1 violates them
    assert zero["tsipras-theorem-2.1"]["verdict"] == "consistent"
    assert both["tsipras-theorem-2.1"]["estimate"] == pytest.approx(
        np.mean([zero["tsipras-theorem-2.1"]["estimate"], one["tsipras-theorem-2.1"]["estimate"]]))
    assert zero["tsipras-closed-forms"]["verdict"] == "consistent"
    closed = both["tsipras-closed-forms"]
    assert closed["verdict"] == "contradicted" and "(seed 1)" in closed["our_value"], closed
    trades = rows_by_id(evaluate_claims(recs, summary, FAST))["era-fig1-trades"]["our_value"]
    assert "50.0% of TRADES's robust-inaccurate points are of the rarest class 2" in trades


def test_claims_are_testable_without_seed_zero() -> None:
    recs, summary = _per_seed_records((1, 2), disagree=False)
    rows = rows_by_id(evaluate_claims(recs, summary, FAST))
    for cid in [*POOLED, "era-fig1-trades"]:
        assert rows[cid]["verdict"] != "not testable", (cid, rows[cid]["reason"])
        assert rows[cid]["seeds"].startswith("2 seeds") and "training seeds 1, 2" in rows[cid]["our_setting"], cid
    # identical seeds: the same verdicts as one seed 0, whatever the seeds are called
    zero = rows_by_id(evaluate_claims({(*k[:3], 0): v for k, v in recs.items() if k[3] == 1},
                                      summary[summary["seed"] == 1].drop(columns="seed"), FAST))
    for cid in POOLED:
        assert rows[cid]["estimate"] == pytest.approx(zero[cid]["estimate"]), cid
    assert "100.0% of TRADES" in rows["era-fig1-trades"]["our_value"]
