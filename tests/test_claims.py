"""The claims table: statistics, verdicts that follow the records, and missing records."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tradeoff.claims import (
    CLAIM_COLUMNS,
    VERDICTS,
    ClaimOptions,
    bootstrap_interval,
    claims_frame,
    decide,
    evaluate_claims,
    mcnemar_pvalue,
    proportion_interval,
    render_markdown,
)
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
    return {r["id"]: r for r in rows}


# -------------------------------------------------------------------------------------------- statistics


def test_decide_follows_the_interval_and_the_sign() -> None:
    assert decide(0.05, (0.01, 0.09)) == "reproduced"
    assert decide(0.05, (-0.01, 0.09)) == "same direction, not significant"
    assert decide(-0.02, (-0.05, 0.01)) == "not reproduced"
    assert decide(0.0, (-0.01, 0.01)) == "not reproduced"
    assert decide(-0.05, (-0.09, -0.01), direction=-1) == "reproduced"
    assert decide(0.05, (0.01, 0.09), pvalue=0.2) == "same direction, not significant"  # McNemar must agree
    assert set(VERDICTS) == {"reproduced", "same direction, not significant", "not reproduced", "not testable"}


def test_mcnemar_counts_only_discordant_pairs() -> None:
    a = np.r_[np.ones(50), np.zeros(50)]
    assert mcnemar_pvalue(a, a) == 1.0
    b = a.copy()
    b[:10] = 0  # 10 discordant pairs, all one way: p = 2 / 2**10
    assert mcnemar_pvalue(a, b) == pytest.approx(2 / 2**10)


def test_exact_interval_covers_by_simulation() -> None:
    rng = np.random.default_rng(0)
    for p, n in ((0.3, 50), (0.97, 360)):
        hits = [lo <= p <= hi for lo, hi in (proportion_interval(int(k), n) for k in rng.binomial(n, p, 400))]
        assert np.mean(hits) >= 0.93  # exact intervals are conservative: >= 95% up to simulation noise


def test_paired_bootstrap_interval_covers_by_simulation() -> None:
    # paired 0/1 outcomes with a true difference of 5 points and correlated errors
    rng = np.random.default_rng(1)
    hits = []
    for sim in range(150):
        u = rng.random(N)
        a, b = (u < 0.85).astype(float), (u < 0.80).astype(float)
        d = a - b
        lo, hi = bootstrap_interval(lambda idx, d=d: d[idx].mean(axis=1), N, seed=sim, resamples=400)
        hits.append(lo <= 0.05 <= hi)
    assert np.mean(hits) >= 0.88


# ------------------------------------------------------------------------------------ verdicts from records


def test_adversarial_training_claim_flips_with_the_records() -> None:
    std = attack(first(350), np.zeros(N, bool))
    robust = attack(first(310), first(80))  # 40 points fewer right clean, all of them right for standard
    rows = rows_by_id(evaluate_claims({("standard", "worst", T): std, ("pgd_at", "worst", T): robust},
                                      options=FAST))
    row = rows[f"tsipras-at-lowers-accuracy-pgd_at-{T}"]
    assert row["verdict"] == "reproduced" and "97.2%" in row["our_value"] and "86.1%" in row["our_value"]
    # the same robust model, but now as accurate as the standard one on all but 2 points
    rows = rows_by_id(evaluate_claims({("standard", "worst", T): std, ("pgd_at", "worst", T): attack(first(348),
                                       first(80))}, options=FAST))
    assert rows[f"tsipras-at-lowers-accuracy-pgd_at-{T}"]["verdict"] == "same direction, not significant"
    rows = rows_by_id(evaluate_claims({("standard", "worst", T): std, ("pgd_at", "worst", T): attack(first(355),
                                       first(80))}, options=FAST))
    assert rows[f"tsipras-at-lowers-accuracy-pgd_at-{T}"]["verdict"] == "not reproduced"


def test_eps_trend_needs_two_budgets() -> None:
    recs = {("standard", "worst", "linf-0.1"): attack(first(350), first(0)),
            ("pgd_at", "worst", "linf-0.1"): attack(first(345), first(250)),
            ("pgd_at", "worst", T): attack(first(310), first(80))}
    row = rows_by_id(evaluate_claims(recs, options=FAST))["tsipras-eps-trend-pgd_at"]
    assert row["verdict"] == "reproduced" and "linf-0.1 vs linf-0.3" in row["our_setting"]
    del recs[("pgd_at", "worst", "linf-0.1")]
    row = rows_by_id(evaluate_claims(recs, options=FAST))["tsipras-eps-trend-pgd_at"]
    assert row["verdict"] == "not testable" and "at least 2" in row["reason"]


def _mixing_records(above: bool) -> dict:
    recs = {("standard", "worst", T): attack(first(355), first(0)),
            ("pgd_at", "worst", T): attack(first(310), first(90))}
    # the chord from (86.1%, 25%) to (98.6%, 0%); mixtures at clean 95% / 97.5%: chord 7.2% / 2.2%
    for alpha, clean, rob_above, rob_below in ((0.9, 342, 80, 10), (0.8, 351, 60, 0)):
        recs[(f"mix-prob-{alpha:g}", "worst", T)] = attack(first(clean), first(rob_above if above else rob_below))
    return recs


def test_mixing_chord_claim_flips_with_the_records() -> None:
    row = rows_by_id(evaluate_claims(_mixing_records(True), options=FAST))[f"mixing-above-chord-{T}"]
    assert row["verdict"] == "reproduced"
    row = rows_by_id(evaluate_claims(_mixing_records(False), options=FAST))[f"mixing-above-chord-{T}"]
    assert row["verdict"] == "not reproduced"


def test_probability_vs_logit_mixing() -> None:
    recs = _mixing_records(True)
    recs[("mix-logit-0.9", "worst", T)] = attack(first(342), first(5))
    recs[("mix-logit-0.8", "worst", T)] = attack(first(351), first(1))
    assert rows_by_id(evaluate_claims(recs, options=FAST))[f"mixing-prob-vs-logit-{T}"]["verdict"] == "reproduced"
    recs[("mix-logit-0.9", "worst", T)] = attack(first(342), first(120))
    recs[("mix-logit-0.8", "worst", T)] = attack(first(351), first(100))
    assert rows_by_id(evaluate_claims(recs, options=FAST))[f"mixing-prob-vs-logit-{T}"]["verdict"] == "not reproduced"


SWEEP = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
# (clean, robust) counts of 360 per α: probability mixing keeps h's robustness (concave, above the chord from
# h (310, 90) to g (355, 0)); logit mixing loses it early (below the chord)
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
    from tradeoff.claims import _equal_clean_advantage

    base_c, base_r = [0.86, 0.986], [0.25, 0.0]
    pc, pr = np.array([*base_c, 0.95]), np.array([*base_r, 0.20])
    lc, lr = np.array([*base_c, 0.95, 0.97]), np.array([*base_r, 0.05, 0.01])
    est, k = _equal_clean_advantage(pc, pr, np.array([0, 0, 1], bool), lc, lr, np.array([0, 0, 1, 1], bool))
    # prob at 0.95 vs the logit node there: +0.15; logit at 0.95: +0.15; logit at 0.97 vs the probability curve
    # between (0.95, 0.20) and (0.986, 0): 0.2·(0.986 − 0.97)/0.036 − 0.01
    assert k == 3
    assert est == pytest.approx((0.15 + 0.15 + 0.2 * 0.016 / 0.036 - 0.01) / 3)


def test_mixing_claims_over_a_sweep_of_alphas_in_both_modes() -> None:
    rows = rows_by_id(evaluate_claims(_sweep(), options=FAST))
    chord, modes = rows[f"mixing-above-chord-{T}"], rows[f"mixing-prob-vs-logit-{T}"]
    assert chord["verdict"] == "reproduced" and "6 weights α" in chord["our_setting"]
    assert modes["verdict"] == "reproduced" and "mean over 12 mixtures" in modes["our_value"]
    assert "6 probability and 6 logit" in modes["our_setting"] and "robust = worst" in modes["our_setting"]
    # the modes swapped: the logit curve is now the better one, and the probability mixtures lie below the chord
    rows = rows_by_id(evaluate_claims(_sweep(prob=LOGIT, logit=PROB), options=FAST))
    assert rows[f"mixing-prob-vs-logit-{T}"]["verdict"] == "not reproduced"
    assert rows[f"mixing-above-chord-{T}"]["verdict"] == "not reproduced"


def test_the_chord_is_not_extrapolated_beyond_the_base_models() -> None:
    # a mixture more accurate than g and as robust as g (0%): on the chord's flat extension, not above it
    recs = _sweep(modes=())
    recs[("mix-prob-0.5", "worst", T)] = attack(first(358), first(0))
    row = rows_by_id(evaluate_claims(recs, options=FAST))[f"mixing-above-chord-{T}"]
    assert row["verdict"] == "not reproduced" and "+0.0 points" in row["our_value"]


def test_a_difference_the_points_cannot_resolve_is_not_significant() -> None:
    # the same curve in both modes, except that the probability mixture at α = 0.7 keeps one more point
    prob = tuple((c, r + (k == 2)) for k, (c, r) in enumerate(PROB))
    row = rows_by_id(evaluate_claims(_sweep(prob=prob, logit=PROB), options=FAST))[f"mixing-prob-vs-logit-{T}"]
    assert row["verdict"] == "same direction, not significant" and "cannot tell" in row["reason"]
    row = rows_by_id(evaluate_claims(_sweep(prob=PROB, logit=PROB), options=FAST))[f"mixing-prob-vs-logit-{T}"]
    assert row["verdict"] == "not reproduced" and "+0.0 points" in row["our_value"]


def test_prob_vs_logit_is_not_testable_with_one_mode() -> None:
    rows = rows_by_id(evaluate_claims(_sweep(modes=("prob",)), options=FAST))
    row = rows[f"mixing-prob-vs-logit-{T}"]
    assert row["verdict"] == "not testable" and "only one mixing mode" in row["reason"]
    assert "mix-logit-<α>" in row["reason"]
    assert rows[f"mixing-above-chord-{T}"]["verdict"] == "reproduced"  # (a) needs the probability mode only
    # logit mixtures at another threat only do not make the comparison testable at this one
    recs = _sweep(modes=("prob",))
    recs[("mix-logit-0.7", "worst", "linf-0.1")] = attack(first(348), first(6))
    rows = rows_by_id(evaluate_claims(recs, options=FAST))
    assert rows[f"mixing-prob-vs-logit-{T}"]["verdict"] == "not testable"


def test_mixnet_against_the_fixed_weight_curve() -> None:
    recs = _mixing_records(False)  # curve: (86.1%, 25%), (95%, 2.8%), (97.5%, 0%), (98.6%, 0%)
    recs[("mixnet", "adaptive", T)] = attack(first(342), first(60))  # 16.7% robust at 95% clean
    row = rows_by_id(evaluate_claims(recs, options=FAST))[f"mixnet-vs-fixed-{T}"]
    assert row["verdict"] == "reproduced" and "adaptive" in row["our_setting"]
    recs[("mixnet", "worst", T)] = attack(first(342), first(2))  # the worst case is preferred to adaptive
    row = rows_by_id(evaluate_claims(recs, options=FAST))[f"mixnet-vs-fixed-{T}"]
    assert row["verdict"] == "not reproduced" and "worst" in row["our_setting"]


def test_claims_only_at_the_threats_a_stage_ran() -> None:
    recs = _mixing_records(True)
    recs[("standard", "worst", "linf-0.1")] = attack(first(350), first(10))
    ids = {r["id"] for r in evaluate_claims(recs, options=FAST)}
    assert f"mixing-above-chord-{T}" in ids and "mixing-above-chord-linf-0.1" not in ids
    assert "mixnet-vs-fixed" in ids  # no mixnet record anywhere: one not-testable row


def test_mcnemar_downgrades_a_bootstrap_interval_built_on_few_points() -> None:
    std = attack(first(350), first(0))
    robust = attack(first(345), first(80))  # 5 discordant points, all in the claimed direction
    row = rows_by_id(evaluate_claims({("standard", "worst", T): std, ("pgd_at", "worst", T): robust},
                                     options=FAST))[f"tsipras-at-lowers-accuracy-pgd_at-{T}"]
    assert row["verdict"] == "same direction, not significant" and "too few points differ" in row["reason"]


def test_mixed_certified_radii_claim() -> None:
    def mixed(certified: int) -> pd.DataFrame:
        rows = []
        for a in (0.5, 0.8, 1.0):
            ok = first(certified if a > 0.5 else 0, 100)
            rows.append(pd.DataFrame({"index": np.arange(100), "label": 1, "alpha": a,
                                      "prediction": np.where(ok, 1, -1),
                                      "radius_rs": np.where(ok, 0.3, 0.0), "radius_lipschitz": np.where(ok, 0.1, 0.0)}))
        return pd.concat(rows, ignore_index=True)

    rows = rows_by_id(evaluate_claims({("gauss_aug-0.25", "certify-mixed", "none"): mixed(40)}, options=FAST))
    assert rows["mixing-certified-radii-rs"]["verdict"] == "reproduced"
    assert rows["mixing-certified-radii-lipschitz"]["verdict"] == "reproduced"
    rows = rows_by_id(evaluate_claims({("gauss_aug-0.25", "certify-mixed", "none"): mixed(0)}, options=FAST))
    assert rows["mixing-certified-radii-rs"]["verdict"] == "not reproduced"


def test_era_branch_comparison() -> None:
    recs = {("era-composite", "composite", T): _composite(first(355), first(150)),
            ("era-composite-trades", "composite", T): _composite(first(355), first(100))}
    assert rows_by_id(evaluate_claims(recs, options=FAST))[f"era-branch-vs-trades-{T}"]["verdict"] == "reproduced"
    recs[("era-composite-trades", "composite", T)] = _composite(first(355), first(152))
    assert rows_by_id(evaluate_claims(recs, options=FAST))[f"era-branch-vs-trades-{T}"]["verdict"] == "not reproduced"


def test_confidence_gap_from_margin_records() -> None:
    rng = np.random.default_rng(3)
    clean_ok, adv_ok = first(330), first(90)
    frame = pd.DataFrame({"index": np.arange(N), "label": 0, "clean_prediction": 0,
                          "clean_correct": clean_ok.astype(int),
                          "clean_margin": np.where(clean_ok, 0.9, rng.uniform(0.1, 0.5, N)), "adv_prediction": 0,
                          "adv_correct": adv_ok.astype(int),
                          "adv_margin": np.where(adv_ok, rng.uniform(0.6, 0.9, N), 0.1), "perturbation": 0.3})
    row = rows_by_id(evaluate_claims({("pgd_at", "confidence", T): frame}, options=FAST))[f"mixing-confidence-gap-{T}"]
    assert row["verdict"] == "reproduced" and "0.767" in row["paper_value"]
    frame["adv_margin"] = np.where(adv_ok, 0.05, 0.1)
    row = rows_by_id(evaluate_claims({("pgd_at", "confidence", T): frame}, options=FAST))[f"mixing-confidence-gap-{T}"]
    assert row["verdict"] == "not reproduced"


def _composite(correct: np.ndarray, robust_accurate: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"index": np.arange(N), "label": 0, "selected": robust_accurate.astype(int),
                         "correct": correct.astype(int), "robust_accurate": (robust_accurate & correct).astype(int),
                         "robust_inaccurate": 0})


def test_era_composite_gain_and_clean_cost() -> None:
    std = attack(first(355), first(0))
    recs = {("standard", "worst", T): std, ("era-composite", "composite", T): _composite(first(355), first(120))}
    assert rows_by_id(evaluate_claims(recs, options=FAST))[f"era-composite-gain-{T}"]["verdict"] == "reproduced"
    recs[("era-composite", "composite", T)] = _composite(first(320), first(120))  # 35 points of clean accuracy lost
    row = rows_by_id(evaluate_claims(recs, options=FAST))[f"era-composite-gain-{T}"]
    assert row["verdict"] == "not reproduced" and "clean" in row["reason"]


def test_robust_inaccuracy_claim() -> None:
    def rob(inacc: int) -> pd.DataFrame:
        return pd.DataFrame({"index": np.arange(N), "label": 0, "correct": 1, "robust_accurate": 0,
                             "robust_inaccurate": first(inacc).astype(int)})

    recs = {("era", "robustness", T): rob(3), ("trades", "robustness", T): rob(40)}
    assert rows_by_id(evaluate_claims(recs, options=FAST))[f"era-robust-inaccuracy-{T}"]["verdict"] == "reproduced"
    recs[("era", "robustness", T)] = rob(45)
    assert rows_by_id(evaluate_claims(recs, options=FAST))[f"era-robust-inaccuracy-{T}"]["verdict"] == "not reproduced"


def _prob(certified: int, samples: int, n: int = 120) -> pd.DataFrame:
    ok = first(certified, n)
    return pd.DataFrame({"index": np.arange(n), "label": 1, "reference": 1,
                         "outcome": np.where(ok, "robust", "not_robust"), "successes": 0,
                         "samples": samples, "samples_drawn": 1000, "counts": "", "seconds": 0.1})


def test_probabilistic_claims() -> None:
    recs = {("variance", "certify-prob-sequential", T): _prob(100, 469),
            ("standard", "certify-prob-sequential", T): _prob(60, 469),
            ("standard", "certify-prob-fixed", T): _prob(60, 1000)}
    rows = rows_by_id(evaluate_claims(recs, options=FAST))
    assert rows[f"prob-variance-vs-standard-{T}"]["verdict"] == "reproduced"
    assert rows["prob-sequential-fewer-samples"]["verdict"] == "reproduced"
    assert "531 fewer" in rows["prob-sequential-fewer-samples"]["our_value"]
    naive = rows["prob-naive-test"]
    assert naive["verdict"] == "reproduced", naive
    recs[("variance", "certify-prob-sequential", T)] = _prob(58, 469)
    assert rows_by_id(evaluate_claims(recs, options=FAST))[f"prob-variance-vs-standard-{T}"]["verdict"] != "reproduced"


def test_tsipras_closed_forms_and_bound() -> None:
    # one linear model whose standard / robust accuracy are 0.95 / 0.95 in closed form (the robust classifier)
    clean, rob = first(342), first(342)
    exact = pd.DataFrame({"index": np.arange(N), "label": 1, "clean_prediction": 1, "clean_correct": clean.astype(int),
                          "prediction": 1, "correct": rob.astype(int), "perturbation": 0.0, "margin": 1.0})
    summary = pd.DataFrame([
        {"dataset": "tsipras", "classifier": "tsipras-robust", "evaluation": "theory", "norm": "", "eps": 0.0,
         "metric": "accuracy", "value": 0.95, "n": 0},
        {"dataset": "tsipras", "classifier": "tsipras-robust", "evaluation": "theory", "norm": "Linf", "eps": 0.3,
         "metric": "accuracy", "value": 0.95, "n": 0},
        {"dataset": "tsipras", "classifier": "tsipras-robust", "evaluation": "theory", "norm": "Linf", "eps": 0.3,
         "metric": "robust_bound", "value": 0.95, "n": 0}])  # p/(1-p) (1 - 0.95) with p = 0.95
    rows = rows_by_id(evaluate_claims({("tsipras-robust", "exact", T): exact}, summary, FAST))
    assert rows["tsipras-closed-forms"]["verdict"] == "reproduced"
    assert rows["tsipras-theorem-2.1"]["verdict"] == "reproduced"
    summary.loc[1, "value"] = 0.80  # a closed form 15 points off the records
    rows = rows_by_id(evaluate_claims({("tsipras-robust", "exact", T): exact}, summary, FAST))
    assert rows["tsipras-closed-forms"]["verdict"] == "not reproduced"
    # a model far above the bound: standard 99% with robust 60% where p/(1-p)(1 - 0.99) = 19%
    exact["clean_correct"], exact["correct"] = first(357).astype(int), first(216).astype(int)
    rows = rows_by_id(evaluate_claims({("tsipras-robust", "exact", T): exact}, summary, FAST))
    assert rows["tsipras-theorem-2.1"]["verdict"] == "not reproduced"


def test_randomized_smoothing_claims() -> None:
    def rs(correct: int, radius: float) -> pd.DataFrame:
        ok = first(correct, 120)
        return pd.DataFrame({"index": np.arange(120), "label": 1, "prediction": np.where(ok, 1, -1),
                             "correct": ok.astype(int), "radius": np.where(ok, np.linspace(radius, 0.01, 120), 0.0)})

    recs = {("gauss_aug-0.25", "certify-rs", "none"): rs(110, 0.8),
            ("gauss_aug-0.5", "certify-rs", "none"): rs(95, 1.6)}
    rows = rows_by_id(evaluate_claims(recs, options=FAST))
    assert rows["rs-falls-with-radius-gauss_aug-0.25"]["verdict"] == "reproduced"
    assert rows["rs-sigma-tradeoff"]["verdict"] == "reproduced"
    del recs[("gauss_aug-0.5", "certify-rs", "none")]
    assert rows_by_id(evaluate_claims(recs, options=FAST))["rs-sigma-tradeoff"]["verdict"] == "not testable"


# --------------------------------------------------------------------------------------- missing records


def test_missing_records_are_not_testable_never_a_crash(tmp_path) -> None:
    rows = evaluate_claims({}, None, FAST)
    ids = {r["id"] for r in rows}
    # every claim of the table is there, each with a reason
    for cid in ("tsipras-closed-forms", "tsipras-theorem-2.1", "tsipras-synthetic-at", "mixing-certified-radii-rs",
                "mixing-certified-radii-lipschitz", "prob-sequential-fewer-samples", "rs-sigma-tradeoff",
                "rs-falls-with-radius", "tsipras-eps-trend-pgd_at"):
        assert cid in ids
    assert all(r["verdict"] == "not testable" and r["reason"] for r in rows if r["id"] != "prob-naive-test")
    # a path whose file is gone, and a file whose sidecar disagrees with it
    gone = tmp_path / "gone.csv"
    broken = tmp_path / "broken.csv"
    write_records(broken, attack(first(300), first(80)).to_dict("records"), {})
    broken.write_text(broken.read_text() + "1,2,3,4,5,6\n")
    rows = rows_by_id(evaluate_claims({("standard", "worst", T): gone, ("pgd_at", "worst", T): broken},
                                      options=FAST))
    row = rows[f"tsipras-at-lowers-accuracy-pgd_at-{T}"]
    assert row["verdict"] == "not testable" and "standard" in row["reason"]


def test_records_from_files_and_markdown(tmp_path) -> None:
    std, rob = tmp_path / "standard.csv", tmp_path / "pgd_at.csv"
    write_records(std, attack(first(350), first(0)).to_dict("records"), {})
    write_records(rob, attack(first(310), first(80)).to_dict("records"), {})
    rows = evaluate_claims({("standard", "worst", T): std, ("pgd_at", "worst", T): rob}, options=FAST)
    frame = claims_frame(rows)
    assert list(frame.columns) == CLAIM_COLUMNS and len(frame) == len(rows)
    assert set(frame["verdict"]) <= set(VERDICTS)
    md = render_markdown(rows)
    assert md.count("\n| ") >= len(rows) and "**reproduced**" in md and "**not testable**" in md
    for r in rows:
        assert r["claim"].replace("|", "\\|") in md
