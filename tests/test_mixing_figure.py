"""The mixing trade-off figure: both modes over α, the chord, the worst case as the robust number."""

from __future__ import annotations

import pandas as pd
import pytest

from tradeoff.figures.mixing import mixing_tradeoff, robust_axis_label, tradeoff_points
from tradeoff.figures.style import read_summary

ALPHAS = [0.5, 0.6, 0.7, 0.8, 0.9, 0.95]
THREAT = {"norm": "Linf", "eps": 0.3}


def _summary(tmp_path, worst_missing: tuple[str, ...] = ()) -> str:
    """Base models, 6 probability and 6 logit mixtures at Linf 0.3, plus decoys at another ε."""
    rows = []

    def add(name: str, evaluation: str, value: float, eps: float = 0.3) -> None:
        rows.append({"dataset": "digits", "classifier": name, "evaluation": evaluation, "norm": "Linf", "eps": eps,
                     "metric": "accuracy", "value": value, "n": 360})

    points = {"standard": (0.98, 0.0), "pgd_at": (0.89, 0.21)}
    for a in ALPHAS:
        points[f"mix-prob-{a:g}"] = (0.98 - 0.09 * a ** 4, 0.21 * a ** 0.5)
        points[f"mix-logit-{a:g}"] = (0.98 - 0.09 * a ** 2, 0.21 * a ** 3)
    for name, (c, r) in points.items():
        add(name, "clean", c)
        add(name, "autoattack", r + 0.01)  # AutoAttack alone misses a few points the worst case breaks
        if name not in worst_missing:
            add(name, "worst", r)
        add(name, "worst", 0.5, eps=0.1)  # another threat: must not be read
    path = tmp_path / "summary.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return str(path)


def test_curves_run_from_g_to_h_in_both_modes_with_the_worst_case(tmp_path):
    summary = read_summary(_summary(tmp_path, worst_missing=("mix-logit-0.7",)), THREAT)
    pts = tradeoff_points(summary, "digits", ALPHAS, ["prob", "logit"], "standard", "pgd_at")
    assert set(pts.curves) == {"prob", "logit"}
    for mode, curve in pts.curves.items():
        assert [a for a, _ in curve] == [0.0, *ALPHAS, 1.0]
        assert curve[0][1] == "standard" and curve[-1][1] == "pgd_at"  # α = 0 and 1 are the base models' rows
        assert [c for _, c in curve[1:-1]] == [f"mix-{mode}-{a:g}" for a in ALPHAS]
    assert pts.robust["mix-prob-0.7"] == pytest.approx(0.21 * 0.7 ** 0.5)  # worst case, not AutoAttack, not ε=0.1
    assert pts.source["mix-prob-0.7"] == "worst"
    assert pts.robust["mix-logit-0.7"] == pytest.approx(0.21 * 0.7 ** 3 + 0.01)  # no worst case: AutoAttack
    assert pts.source["mix-logit-0.7"] == "autoattack"
    assert "empirical worst case" in robust_axis_label(list(pts.source.values()), "Linf ε=0.3")
    assert "AutoAttack alone" in robust_axis_label(list(pts.source.values()), "")
    label = robust_axis_label(["worst", "worst"], "Linf ε=0.3")
    assert label == "robust accuracy (%) at Linf ε=0.3: empirical worst case"
    assert robust_axis_label(["autoattack"], "") == "AutoAttack accuracy (%): empirical"


def test_a_mode_without_mixtures_has_no_curve_and_the_figure_is_drawn(tmp_path):
    path = _summary(tmp_path)
    pts = tradeoff_points(read_summary(path, THREAT), "digits", ALPHAS, ["prob", "logit"], "standard", "trades")
    assert pts.curves["prob"][-1][1] == "mix-prob-0.95"  # h missing: the curve stops at the last mixture
    pts = tradeoff_points(read_summary(path, THREAT), "digits", [0.33], ["prob", "logit"], "standard", "pgd_at")
    assert pts.curves == {}
    out = tmp_path / "mixing_tradeoff.png"
    mixing_tradeoff(path, str(out), "digits", ALPHAS, ["prob", "logit"], "standard", "pgd_at", mixnet="mixnet",
                    threat=THREAT)
    assert out.stat().st_size > 0 and out.with_suffix(".pdf").stat().st_size > 0
