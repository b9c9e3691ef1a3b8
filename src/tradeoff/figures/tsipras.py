"""Tsipras et al.'s trade-off on their distribution: closed-form curves vs measured points, and weights."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from ..io import read_records
from ..theory.closed_forms import exact_accuracy_curve
from . import register
from .style import save

COLORS = {"standard": "tab:blue", "adversarial": "tab:red", "averaging": "tab:green", "bayes": "tab:purple",
          "robust": "tab:orange"}
LABELS = {"standard": "standard training", "adversarial": "adversarial training (PGD)",
          "averaging": "averaging sign(mean x₂..)", "bayes": "Bayes-optimal", "robust": "robust sign(x₁)"}


def _panel(ax: plt.Axes, names: Sequence[str], curves: Mapping[str, np.ndarray],
           records: Mapping[str, Mapping[str, str]], eps_points: np.ndarray, eps_attack: float) -> None:
    for name in names:
        color = COLORS.get(name)
        rows = curves[name]
        ax.plot(rows[:, 0], 100 * rows[:, 1], color=color, lw=1.8, label=f"{LABELS.get(name, name)}: theory")
        bound = rows[:, 2]
        has = np.isfinite(bound)
        if has.any():
            ax.plot(rows[has, 0], 100 * np.minimum(bound[has], 1.0), color=color, lw=1.2, ls="--", alpha=0.8)
        exact, meta = read_records(records[name]["exact"])
        emp = exact_accuracy_curve(exact["margin"].to_numpy(), float(meta["weight_l1"]), eps_points)
        ax.plot(eps_points, 100 * emp, "o", color=color, ms=4.5, mfc="white", mew=1.3)
        pgd, _ = read_records(records[name]["pgd"])
        ax.plot([eps_attack], [100 * pgd["correct"].mean()], "x", color="black", ms=8, mew=1.6, zorder=4)
    ax.axvline(eps_attack, color="gray", ls=":", lw=1)
    ax.set_xlabel("ℓ∞ budget ε")
    ax.set_ylim(-3, 103)
    ax.grid(alpha=0.3)


@register("tsipras-tradeoff")
def tsipras_tradeoff(out: str, closed_forms: str, records: Mapping[str, Mapping[str, str]],
                     trained: Sequence[str], references: Sequence[str], empirical_points: int = 13) -> None:
    """Accuracy under the worst-case ℓ∞ attack as ε grows: closed forms (lines), exact worst case on the
    test points (circles), PGD at the attack budget (crosses) and Theorem 2.1's bound ``p/(1−p)·δ``
    (dashed, where it applies: ε ≥ 2η). Left: the trained linear models; right: the paper's reference
    classifiers. Drawn from ``closed_forms.csv`` and the per-sample ``exact``/``pgd`` records only."""
    frame, meta = read_records(closed_forms)
    p, eta, d, eps_attack = float(meta["p"]), float(meta["eta"]), int(meta["d"]), float(meta["eps"])
    curves = {name: g.sort_values("eps")[["eps", "accuracy", "bound"]].to_numpy(dtype=float)
              for name, g in frame.groupby("classifier")}
    eps_points = np.linspace(0.0, float(frame["eps"].max()), int(empirical_points))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4), dpi=120, sharey=True)
    _panel(axes[0], trained, curves, records, eps_points, eps_attack)
    _panel(axes[1], references, curves, records, eps_points, eps_attack)
    axes[0].set_ylabel("accuracy (%) under the worst-case ℓ∞ attack")
    axes[0].set_title("trained linear models")
    axes[1].set_title("reference classifiers")
    for ax in axes:
        ax.text(eps_attack, 50, " ε = 2η", color="gray", fontsize=8, rotation=90, va="center")
        handles, labels = ax.get_legend_handles_labels()
        handles += [plt.Line2D([], [], color="gray", ls="--"),
                    plt.Line2D([], [], color="gray", ls="", marker="o", mfc="white"),
                    plt.Line2D([], [], color="black", ls="", marker="x")]
        labels += ["bound p/(1−p)·δ (ε ≥ 2η)", "exact worst case, test points", "PGD, test points"]
        ax.legend(handles, labels, fontsize=7, loc="center right")
    fig.suptitle(f"Tsipras et al.: p = {p:g}, η = {eta:g}, d = {d}")
    save(fig, Path(out))


@register("tsipras-weights")
def tsipras_weights(out: str, weights: str, trained: Sequence[str], reference: str = "bayes") -> None:
    """Weights of the trained linear models, as fractions of their ℓ1 norm (coordinate 0 is the robust
    feature x₁, 1..d the weak features), next to the ``reference`` classifier's. Standard training spreads
    its weight over the weak features; adversarial training puts it on x₁. From ``weights.csv`` only."""
    frame, meta = read_records(weights)
    names = [*trained, reference]
    fig, axes = plt.subplots(len(names), 1, figsize=(8, 2.0 * len(names) + 0.6), dpi=120, sharex=True)
    for ax, name in zip(np.atleast_1d(axes), names, strict=True):
        w = frame[frame.classifier == name].sort_values("coordinate")["weight"].to_numpy(dtype=float)
        share = w / np.abs(w).sum()
        idx = np.arange(share.shape[0])
        # one LineCollection per panel (d bars as patches make the PDF slow to write)
        ax.vlines(idx[1:], 0, share[1:], color=COLORS.get(name, "gray"), lw=2.5, alpha=0.8, label="weak features")
        ax.vlines([0], 0, [share[0]], color="black", lw=4, label="x₁ (robust feature)")
        ax.axhline(0, color="black", lw=0.5)
        ax.set_title(f"{LABELS.get(name, name)}: |w₁| / ‖w‖₁ = {abs(share[0]):.3f}", fontsize=9)
        ax.set_ylabel("w / ‖w‖₁")
        ax.grid(alpha=0.3, axis="y")
    np.atleast_1d(axes)[min(1, len(names) - 1)].legend(fontsize=7, loc="upper right")  # the sparse panel
    np.atleast_1d(axes)[-1].set_xlabel("coordinate (0 = x₁, 1..d = weak features)")
    p, eta, d = float(meta["p"]), float(meta["eta"]), int(meta["d"])
    fig.suptitle(f"linear weights on D(p = {p:g}, η = {eta:g}, d = {d})")
    save(fig, Path(out))


@register("tsipras")
def tsipras_both(out: str, weights_out: str, closed_forms: str, weights: str,
                 records: Mapping[str, Mapping[str, str]], trained: Sequence[str], references: Sequence[str],
                 empirical_points: int = 13) -> None:
    """Both figures of the theory stage in one call (``out``: the trade-off curves, ``weights_out``: the
    weights); one process instead of two, since starting the command line costs more than drawing."""
    tsipras_tradeoff(out, closed_forms, records, trained, references, empirical_points)
    tsipras_weights(weights_out, weights, trained)
