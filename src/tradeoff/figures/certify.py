"""Certified accuracy vs l2 radius: randomized smoothing per σ, and the mixed classifier per mixing weight.

Both figures are drawn from the per-sample certification records (results/<dataset>/certify/...).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..certify.bounds import certified_accuracy
from ..io import read_records
from . import register
from .style import new_figure, save


def accuracy_curve(frame: pd.DataFrame, radius_column: str, grid: np.ndarray) -> np.ndarray:
    """Certified accuracy (%) at every radius of ``grid`` from per-sample records."""
    pred, label = frame["prediction"].to_numpy(), frame["label"].to_numpy()
    radius = frame[radius_column].to_numpy()
    return np.array([100 * certified_accuracy(pred, label, radius, r) for r in grid])


def _grid(max_radius: float) -> np.ndarray:
    return np.linspace(0.0, max(max_radius, 1e-3) * 1.05, 400)


@register("certify-rs")
def certify_rs(records: Sequence[str], sigmas: Sequence[float], out: str, dataset: str = "") -> None:
    """Certified accuracy vs radius of the Gaussian-smoothed models, one curve per σ (as Cohen et al.)."""
    frames = [read_records(p) for p in records]
    grid = _grid(max(float(f["radius"].max()) for f, _ in frames))
    fig, ax = new_figure()
    for (frame, _), sigma in zip(frames, sigmas, strict=True):
        ax.plot(grid, accuracy_curve(frame, "radius", grid), label=f"σ = {sigma:g}")
    points, meta = len(frames[0][0]), frames[0][1]
    ax.set_xlabel("ℓ2 radius")
    ax.set_ylabel("certified accuracy (%)")
    ax.set_title(f"{dataset}: randomized smoothing ({points} points, n={meta['config'].get('n')}, "
                 f"α={meta['alpha']:g})", fontsize=9)
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend()
    save(fig, Path(out))


@register("certify-mixed")
def certify_mixed_figure(rs_records: Sequence[str], mixed_records: Sequence[str], sigmas: Sequence[float],
                         out: str, dataset: str = "") -> None:
    """Per σ: certified accuracy vs radius of the mixed classifier for each α (solid: Theorem 2, dotted:
    Theorem 1), next to the smoothed robust model alone (Cohen's certificate, black)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(sigmas), figsize=(5.0 * len(sigmas), 4.2), dpi=120, squeeze=False)
    for ax, rs_path, mixed_path, sigma in zip(axes[0], rs_records, mixed_records, sigmas, strict=True):
        rs, _ = read_records(rs_path)
        mixed, _ = read_records(mixed_path)
        grid = _grid(max(float(rs["radius"].max()), float(mixed["radius_rs"].max())))
        smoothed_clean = 100 * float((rs["prediction"] == rs["label"]).mean())
        ax.plot(grid, accuracy_curve(rs, "radius", grid), color="black", lw=2,
                label=f"smoothed model alone (Cohen; certified at r=0: {smoothed_clean:.1f}%)")
        alphas = sorted(mixed["alpha"].unique())
        colors = plt.cm.viridis(np.linspace(0.0, 0.9, len(alphas)))
        for a, color in zip(alphas, colors, strict=True):
            sel = mixed[mixed["alpha"] == a]
            clean = 100 * float((sel["mixed_clean_prediction"] == sel["label"]).mean())
            ax.plot(grid, accuracy_curve(sel, "radius_rs", grid), color=color,
                    label=f"mixed α={a:g} (clean {clean:.1f}%)")
            ax.plot(grid, accuracy_curve(sel, "radius_lipschitz", grid), color=color, ls=":")
        standard_clean = 100 * float((mixed.drop_duplicates("index")["standard_prediction"]
                                      == mixed.drop_duplicates("index")["label"]).mean())
        ax.set_title(f"{dataset}, σ = {sigma:g} (standard model clean: {standard_clean:.1f}%)", fontsize=9)
        ax.set_xlabel("ℓ2 radius (solid: Theorem 2, dotted: Theorem 1)")
        ax.set_ylabel("certified accuracy (%)")
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    save(fig, Path(out))
