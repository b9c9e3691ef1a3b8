"""Mixing classifiers: trade-off curve over α, the mixing network's α(x), the robust model's margins."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..io import read_records
from . import register
from .base import accuracy_table
from .style import new_figure, read_summary, save, threat_label


@register("mixing-tradeoff")
def mixing_tradeoff(summary_path: str, out: str, dataset: str, alphas: list[float], modes: list[str],
                    accurate: str, robust: str, mixnet: str | None = None, threat: dict | None = None) -> None:
    """Clean vs AutoAttack accuracy over α for each mixing mode (one line per mode, α annotated), the two
    base models as stars, and the mixing network under AutoAttack and under the adaptive attack."""
    summary = read_summary(summary_path, threat)
    clean = accuracy_table(summary, dataset, "clean")
    robust_acc = accuracy_table(summary, dataset, "autoattack")
    adaptive = accuracy_table(summary, dataset, "adaptive")
    fig, ax = new_figure(5.5, 4.5)
    # Each curve runs from g alone (α = 0) through the mixtures to h alone (α = 1).
    for mode, marker in zip(modes, ("o", "s", "^"), strict=False):
        ids = [(0.0, accurate), *((a, f"mix-{mode}-{a:g}") for a in sorted(alphas) if 0 < a < 1), (1.0, robust)]
        pts = [(a, clean[c], robust_acc[c]) for a, c in ids if c in clean and c in robust_acc]
        if not any(0 < p[0] < 1 for p in pts):
            continue
        xs, ys = [100 * p[1] for p in pts], [100 * p[2] for p in pts]
        ax.plot(xs, ys, marker=marker, label=f"{mode} mixing", zorder=3, alpha=0.8)
        for (a, _, _), xv, yv in zip(pts, xs, ys, strict=True):
            if 0 < a < 1:
                ax.annotate(f"α={a:g}", (xv, yv), textcoords="offset points", xytext=(4, -10), fontsize=7)
    for name, color in ((accurate, "black"), (robust, "tab:red")):
        if name in clean and name in robust_acc:
            ax.scatter(100 * clean[name], 100 * robust_acc[name], marker="*", s=160, color=color,
                       label=f"{name} (base)", zorder=4)
    if mixnet and mixnet in clean and mixnet in robust_acc:
        cx, ry = 100 * clean[mixnet], 100 * robust_acc[mixnet]
        ax.scatter(cx, ry, marker="D", s=60, color="tab:green", label=f"{mixnet} (AutoAttack)", zorder=5)
        if mixnet in adaptive:
            ay = 100 * adaptive[mixnet]
            # a larger open marker: it rings the AutoAttack point when both are equal
            ax.scatter(cx, ay, marker="D", s=150, facecolor="none", edgecolor="tab:green",
                       label=f"{mixnet} (adaptive, worst case)", zorder=5)
            ax.annotate("", (cx, ay), (cx, ry), arrowprops={"arrowstyle": "->", "color": "tab:green"})
    label = threat_label(summary, dataset, ("autoattack",))
    ax.set_xlabel("clean accuracy (%)")
    ax.set_ylabel(f"AutoAttack accuracy (%) {label}")
    ax.set_title(f"{dataset}: mixing {accurate} with {robust}")
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
