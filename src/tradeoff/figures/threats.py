"""The trade-off as a function of the threat budget: clean and worst-case robust accuracy of every method
against ε (Tsipras et al. 2019, Section 2: the robust model's standard accuracy falls as ε grows), on the
run's dataset, with the closed forms on Tsipras et al.'s synthetic distribution beside it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd

from ..io import read_records
from . import register
from .style import read_summary, save
from .unified import family

EMPIRICAL = ("worst", "autoattack", "adaptive", "pgd")
"""Evaluations whose minimum per classifier is its robust accuracy (``worst`` is already that minimum)."""


def accuracy_by_threat(summary: pd.DataFrame, dataset: str, threats: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per (classifier, ε) evaluated at that threat: clean accuracy and the lowest accuracy over the
    empirical attacks run on it (the reported robust accuracy), with the number of test points."""
    out = []
    for threat in threats:
        eps = float(threat["eps"])
        rows = summary[(summary.dataset == dataset) & (summary.metric == "accuracy") & (summary.norm == threat["norm"])
                       & ((summary.eps - eps).abs() < 1e-9)]
        for name, group in rows.groupby("classifier"):
            by_eval = group.set_index("evaluation")["value"]
            robust = [by_eval[e] for e in EMPIRICAL if e in by_eval]
            if "clean" not in by_eval or not robust:
                continue
            out.append({"classifier": name, "norm": threat["norm"], "eps": eps, "clean": float(by_eval["clean"]),
                        "robust": float(min(robust)), "n": int(group["n"].max())})
    return pd.DataFrame(out, columns=["classifier", "norm", "eps", "clean", "robust", "n"])


@register("threats")
def threats_figure(summary_path: str, out: str, dataset: str, threats: list[dict], closed_forms: str) -> None:
    """Left: worst-case robust (solid, circles) and clean (dashed, crosses) accuracy against ε for every
    classifier (lines join the budgets a classifier is evaluated at; mixtures and smoothed models are left out
    for legibility, they are in the per-budget comparison figure); right: the closed forms of Tsipras et
    al.'s reference classifiers on their distribution (standard accuracy is the curve's value at ε = 0)."""
    summary = read_summary(summary_path)
    table = accuracy_by_threat(summary, dataset, threats)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11.5, 4.6), dpi=120)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    curves = [(name, g.sort_values("eps")) for name, g in table.groupby("classifier")
              if not family(name).startswith("mix-") and not name.startswith("gauss_aug-")]
    for k, (name, g) in enumerate(curves):
        color = colors[k % len(colors)]
        # a robust model is trained at the budget it is attacked at: each point is its own model, and a
        # classifier evaluated at one budget only is a point, not a line
        style = "-o" if len(g) > 1 else "o"
        left.plot(g.eps, 100 * g.robust, style, color=color, ms=5, label=name)
        left.plot(g.eps, 100 * g.clean, "--" if len(g) > 1 else "x", color=color, lw=1, alpha=0.7)
    norm = threats[0]["norm"] if threats else ""
    left.set_xlabel(f"{norm} budget ε (training and attack)")
    left.set_xlim(0, max(float(t["eps"]) for t in threats) * 1.1 if threats else 1)
    left.set_ylabel("accuracy (%): robust worst case (o); clean (dashed, x)")
    left.set_title(f"{dataset}: the trade-off against ε")
    left.set_ylim(-3, 103)
    left.grid(alpha=0.3)
    left.legend(fontsize=7, ncols=2, loc="lower left")
    frame, meta = read_records(closed_forms)
    for name, g in frame.groupby("classifier"):
        g = g.sort_values("eps")
        right.plot(g.eps, 100 * g.accuracy, lw=1.6, label=name)
    right.axvline(float(meta["eps"]), color="gray", ls=":", lw=1)
    right.set_xlabel("ℓ∞ budget ε")
    right.set_ylabel("accuracy (%) under the worst-case attack")
    right.set_title(f"Tsipras et al. closed forms (p={meta['p']}, η={meta['eta']}, d={meta['d']})")
    right.set_ylim(-3, 103)
    right.grid(alpha=0.3)
    right.legend(fontsize=7)
    save(fig, out)
