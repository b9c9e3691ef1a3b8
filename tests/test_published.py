"""The published-numbers table: our accuracies, their exact intervals and where they stand."""

from __future__ import annotations

import pandas as pd
import pytest
from scipy.stats import binomtest

from tradeoff import published


def _summary(rows):
    return pd.DataFrame([{"classifier": c, "evaluation": e, "metric": "accuracy", "eps": 0.3, "value": v, "n": n}
                         for c, e, v, n in rows])


def test_the_interval_is_scipys_exact_one():
    lo, hi = published.exact_interval(905, 1000)
    ci = binomtest(905, 1000).proportion_ci(0.95)
    assert (lo, hi) == pytest.approx((ci.low, ci.high))


@pytest.mark.parametrize(("k", "n", "value", "expected"), [
    (905, 1000, 88.50, "above"),    # [88.5…, 92.2…]: the lower end clears 88.50
    (880, 1000, 88.50, "covers"),   # 88.0% on 1,000 points cannot be told from 88.5%
    (800, 1000, 82.93, "below"),    # [77.4, 82.4] ends below 82.93
    (8700, 10000, 88.50, "below"),  # 87.0% on 10,000 points is told apart from 88.5%
])
def test_standing_follows_the_interval(k, n, value, expected):
    assert published.standing((k / n, n), value) == expected


def test_our_rows_sit_under_the_published_ones_with_their_n():
    summary = _summary([("pgd_at", "clean", 0.995, 1000), ("pgd_at", "clean-all", 0.99, 10000),
                        ("pgd_at", "worst", 0.905, 1000),
                        ("trades", "clean", 0.985, 10000), ("trades", "worst", 0.80, 1000)])
    rows = published.comparison(summary, "mnist", "Linf", 0.3)
    models = [r["model"] for r in rows]
    assert models.index("ours: pgd_at") == models.index("PGD-AT (Madry et al. 2018)") + 1
    ours = {r["model"]: r for r in rows if r["model"].startswith("ours")}
    # clean accuracy on the whole test set when the run has it; the worst case on the attacked subset
    assert ours["ours: pgd_at"]["clean"].startswith("99.00") and "(n = 10,000)" in ours["ours: pgd_at"]["clean"]
    assert "(n = 1,000)" in ours["ours: pgd_at"]["robust"] and "(n = 10,000)" in ours["ours: trades"]["clean"]
    assert "above PGD-AT's 88.50" in ours["ours: pgd_at"]["robust"]
    assert "below fast AT's 82.93" in ours["ours: trades"]["robust"]
    assert published.comparison(summary, "digits", "Linf", 0.3) is None
