"""Mixing classifiers: trade-off curve over α, the mixing network's α(x), the robust model's margins."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..io import read_records
from . import register
from .base import accuracy_table
from .style import new_figure, read_summary, save, threat_label

ROBUST_EVALUATIONS = ("worst", "autoattack")
"""Robust accuracy of a classifier in the trade-off figure: its per-point worst case over every attack run
(``worst``) when the summary has it, else AutoAttack alone."""


def robust_accuracies(summary: pd.DataFrame, dataset: str, names: list[str]
                      ) -> tuple[dict[str, float], dict[str, float], dict[str, str]]:
    """``(clean, robust, source)`` of each classifier of ``names`` that has a clean accuracy and one of
    :data:`ROBUST_EVALUATIONS` (the first present: ``source``); the others are left out."""
    clean = accuracy_table(summary, dataset, "clean")
    tables = {ev: accuracy_table(summary, dataset, ev) for ev in ROBUST_EVALUATIONS}
    c: dict[str, float] = {}
    r: dict[str, float] = {}
    src: dict[str, str] = {}
    for name in names:
        ev = next((e for e in ROBUST_EVALUATIONS if name in tables[e]), None)
        if name in clean and ev is not None:
            c[name], r[name], src[name] = float(clean[name]), float(tables[ev][name]), ev
    return c, r, src


@dataclass
class TradeoffPoints:
    """The trade-off figure's numbers (fractions): per classifier (clean, robust) and the evaluation the robust
    number comes from; per mode the curve ``[(α, classifier), ...]`` from ``g`` (α = 0) to ``h`` (α = 1)."""

    clean: dict[str, float]
    robust: dict[str, float]
    source: dict[str, str]
    curves: dict[str, list[tuple[float, str]]]


def tradeoff_points(summary: pd.DataFrame, dataset: str, alphas: list[float], modes: list[str], accurate: str,
                    robust: str) -> TradeoffPoints:
    """Clean and robust accuracy of ``g``, ``h`` and the mixtures ``mix-<mode>-<α>`` (α strictly inside (0, 1)).

    The ends of each curve are the base models' own rows: the mixture at α = 0 (1) is ``g`` (``h``) exactly
    (:func:`tradeoff.mixing.model.mix_outputs`), so its robust accuracy is theirs. A classifier enters a curve
    only if the summary has its clean accuracy and one of :data:`ROBUST_EVALUATIONS`; a mode without any
    mixture present gets no curve.
    """
    names = [accurate, robust, *(f"mix-{m}-{a:g}" for m in modes for a in alphas)]
    out = TradeoffPoints(*robust_accuracies(summary, dataset, names), {})
    for mode in modes:
        ids = [(0.0, accurate), *((a, f"mix-{mode}-{a:g}") for a in sorted(alphas) if 0 < a < 1), (1.0, robust)]
        curve = [(a, c) for a, c in ids if c in out.clean]
        if any(0 < a < 1 for a, _ in curve):
            out.curves[mode] = curve
    return out


def robust_axis_label(sources: list[str], threat: str) -> str:
    """What the robust number is: "empirical worst case" (an upper bound on the true robust accuracy, from
    the attacks run), naming AutoAttack where a classifier has no worst-case evaluation."""
    kinds, at = set(sources), f" at {threat}" if threat else ""
    if kinds == {"autoattack"}:
        return f"AutoAttack accuracy (%){at}: empirical"
    if kinds == {"worst"}:
        return f"robust accuracy (%){at}: empirical worst case"
    return f"robust accuracy (%){at}: empirical worst case\n(AutoAttack alone where no worst case: open markers)"


@register("mixing-tradeoff")
def mixing_tradeoff(summary_path: str, out: str, dataset: str, alphas: list[float], modes: list[str],
                    accurate: str, robust: str, mixnet: str | None = None, threat: dict | None = None) -> None:
    """Clean vs robust accuracy over α for each mixing mode (one curve per mode, α annotated), the chord between
    the two base models (stars), and the mixing network. Robust accuracy is the per-point worst case over the
    attacks run (empirical; AutoAttack alone where the summary has no worst case, drawn open)."""
    summary = read_summary(summary_path, threat)
    pts = tradeoff_points(summary, dataset, alphas, modes, accurate, robust)
    adaptive = accuracy_table(summary, dataset, "adaptive")
    fig, ax = new_figure(6.0, 4.8)
    xy = {c: (100 * pts.clean[c], 100 * pts.robust[c]) for c in pts.clean}
    if accurate in xy and robust in xy:
        (x0, y0), (x1, y1) = xy[accurate], xy[robust]
        ax.plot([x0, x1], [y0, y1], ls="--", color="gray", lw=1, zorder=2,
                label=f"chord {accurate}–{robust} (straight line)")
    offsets = {"prob": (4, 4), "logit": (4, -10)}
    for mode, marker in zip(modes, ("o", "s", "^"), strict=False):
        if mode not in pts.curves:
            continue
        curve = pts.curves[mode]
        line = ax.plot([xy[c][0] for _, c in curve], [xy[c][1] for _, c in curve], marker=marker, ms=5,
                       label=f"{mode} mixing (α from 0 to 1)", zorder=3, alpha=0.85)[0]
        for a, c in curve:
            if pts.source[c] != "worst":  # AutoAttack only: open marker on top
                ax.scatter(*xy[c], marker=marker, s=40, facecolor="white", edgecolor=line.get_color(), zorder=4)
            if 0 < a < 1:
                ax.annotate(f"{a:g}", xy[c], textcoords="offset points", xytext=offsets.get(mode, (4, 4)),
                            fontsize=6, color=line.get_color())
    for name, color in ((accurate, "black"), (robust, "tab:red")):
        if name in xy:
            ax.scatter(*xy[name], marker="*", s=160, color=color, zorder=5,
                       label=f"{name} ({'g, α = 0' if name == accurate else 'h, α = 1'})")
    if mixnet:
        net_clean, net_robust, net_source = robust_accuracies(summary, dataset, [mixnet])
        if mixnet in net_clean:
            cx, ry = 100 * net_clean[mixnet], 100 * net_robust[mixnet]
            ax.scatter(cx, ry, marker="D", s=60, color="tab:green", zorder=6,
                       label=f"{mixnet} ({'worst case' if net_source[mixnet] == 'worst' else 'AutoAttack'})")
            if mixnet in adaptive and 100 * adaptive[mixnet] < ry - 1e-9:
                ay = 100 * adaptive[mixnet]
                ax.scatter(cx, ay, marker="D", s=150, facecolor="none", edgecolor="tab:green", zorder=6,
                           label=f"{mixnet} (adaptive attack)")
                ax.annotate("", (cx, ay), (cx, ry), arrowprops={"arrowstyle": "->", "color": "tab:green"})
            pts.source[mixnet] = net_source[mixnet]
    ax.set_xlabel("clean accuracy (%)")
    ax.set_ylabel(robust_axis_label(list(pts.source.values()),
                                    threat_label(summary, dataset, ROBUST_EVALUATIONS)), fontsize=8)
    ax.set_title(f"{dataset}: mixing {accurate} (g) with {robust} (h); labels: α")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    save(fig, Path(out))


@register("mixing-alpha")
def mixing_alpha(records: str, out: str) -> None:
    """Histogram of the mixing network's α(x) on clean test inputs and on the adaptive attack's inputs."""
    frame, meta = read_records(records)
    fig, ax = new_figure(5.0, 3.8)
    lo = min(frame.alpha_clean.min(), frame.alpha_adaptive.min())
    hi = max(frame.alpha_clean.max(), frame.alpha_adaptive.max())
    bins = np.linspace(lo - 1e-3, hi + 1e-3, 31)
    ax.hist(frame.alpha_clean, bins=bins, alpha=0.6, label=f"clean (mean {frame.alpha_clean.mean():.3f})")
    loss = str(meta.get("params", {}).get("loss", "ce")).upper()
    ax.hist(frame.alpha_adaptive, bins=bins, alpha=0.6,
            label=f"attacked, {loss} + w·BCE(γ, 1) (mean {frame.alpha_adaptive.mean():.3f})")
    rng = meta.get("alpha_range")
    if rng:
        for v in rng:
            ax.axvline(v, color="gray", ls=":", lw=1)
    ax.set_xlabel("α(x) (weight of the robust model)")
    ax.set_ylabel("test points")
    ax.set_title(f"{meta.get('dataset', '')}: mixing network, {meta.get('norm', '')} "
                 f"ε={meta.get('eps', 0):g}")
    ax.legend(fontsize=8)
    save(fig, Path(out))


@register("mixing-margin")
def mixing_margin(records: str, out: str) -> None:
    """The robust model's probability margin p_top − p_second on points it gets right under attack (at the
    attacked input) vs points it gets wrong clean (at the clean input)."""
    frame, meta = read_records(records)
    right = frame.loc[frame.adv_correct == 1, "adv_margin"]
    wrong = frame.loc[frame.clean_correct == 0, "clean_margin"]
    fig, ax = new_figure(5.0, 3.8)
    top = max(0.05, float(right.max()) if len(right) else 0.0, float(wrong.max()) if len(wrong) else 0.0)
    bins = np.linspace(0, min(1.0, 1.05 * top), 26)
    ax.hist(right, bins=bins, alpha=0.6, density=True,
            label=f"correct under attack (n={len(right)}, mean {right.mean():.3f})")
    ax.hist(wrong, bins=bins, alpha=0.6, density=True,
            label=f"wrong on clean (n={len(wrong)}, mean {wrong.mean():.3f})")
    ax.set_xlabel(f"probability margin of {meta.get('classifier', 'the robust model')}")
    ax.set_ylabel("density")
    ax.set_title(f"{meta.get('dataset', '')}: {meta.get('norm', '')} ε={meta.get('eps', 0):g}, "
                 f"T_h={meta.get('temp', 1):g}")
    ax.legend(fontsize=8)
    save(fig, Path(out))
