"""ERA figures: the decision regions on gauss3 (the paper's picture) and the digits comparison table."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..io import read_records, write_text
from . import register
from .style import new_figure, read_summary, save

CLASS_COLORS = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C",
                "#CCB974", "#64B5CD"]

TABLE_COLUMNS = ["clean_accuracy", "robust_accuracy", "robust_inaccuracy", "selection_rate",
                 "sound_selection_rate", "autoattack_accuracy"]
LABELS = {"clean_accuracy": "clean accuracy", "robust_accuracy": "robust accuracy",
          "robust_inaccuracy": "robust inaccuracy", "selection_rate": "selection rate",
          "sound_selection_rate": "selected at 2ε",
          "autoattack_accuracy": "AutoAttack accuracy"}


def _lookup(summary: pd.DataFrame, dataset: str, classifier: str, evaluation: str, metric: str) -> float:
    rows = summary[(summary.dataset == dataset) & (summary.classifier == classifier)
                   & (summary.evaluation == evaluation) & (summary.metric == metric)]
    return float(rows["value"].iloc[0]) if len(rows) else math.nan


def era_table(summary: pd.DataFrame, dataset: str, classifiers: Sequence[str]) -> pd.DataFrame:
    """One row per classifier: clean accuracy, robust accuracy and robust inaccuracy (attack towards the
    own prediction; for a composite the per-sample worse of the joined records and the adaptive attack),
    selection rate at ε and at 2ε (composites) and AutoAttack accuracy against the label (base models)."""
    out = []
    for name in classifiers:
        composite = bool(len(summary[(summary.classifier == name) & (summary.evaluation == "adaptive")]))
        robust_eval = "adaptive" if composite else "robustness"
        out.append({
            "classifier": name,
            "clean_accuracy": _lookup(summary, dataset, name, "clean", "accuracy"),
            "robust_accuracy": _lookup(summary, dataset, name, robust_eval, "accuracy"),
            "robust_inaccuracy": _lookup(summary, dataset, name, robust_eval, "robust_inaccuracy"),
            "selection_rate": _lookup(summary, dataset, name, "clean", "selection_rate"),
            "sound_selection_rate": _lookup(summary, dataset, name, "clean", "sound_selection_rate"),
            "autoattack_accuracy": _lookup(summary, dataset, name, "autoattack", "accuracy"),
        })
    return pd.DataFrame(out, columns=["classifier", *TABLE_COLUMNS])


def _markdown(table: pd.DataFrame, title: str) -> str:
    head = "| classifier | " + " | ".join(LABELS[c] for c in TABLE_COLUMNS) + " |"
    lines = [f"### {title}", "", head, "|" + "---|" * (len(TABLE_COLUMNS) + 1)]
    for _, row in table.iterrows():
        cells = ["—" if math.isnan(row[c]) else f"{100 * row[c]:.1f}%" for c in TABLE_COLUMNS]
        lines.append(f"| {row['classifier']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


@register("era")
def era_figure(summary_path: str, out: str, dataset: str, classifiers: list[str], table_out: str,
               threat: dict | None = None) -> None:
    """Grouped bars (clean accuracy, robust accuracy, robust inaccuracy, selection rate) per classifier, and
    the same numbers as ``table_out`` (CSV) plus a Markdown copy next to it, from summary.csv alone."""
    summary = read_summary(summary_path, threat)
    table = era_table(summary, dataset, classifiers)
    rows = summary[(summary.dataset == dataset) & (summary.evaluation == "robustness")]
    threat = f"{rows['norm'].iloc[0]} ε={rows['eps'].iloc[0]:g}" if len(rows) else ""
    write_text(table_out, table.to_csv(index=False, float_format="%.4f", lineterminator="\n"))
    title = f"{dataset}: ERA and the composition ({threat})"
    write_text(Path(table_out).with_suffix(".md"), _markdown(table, title))
    metrics = ["clean_accuracy", "robust_accuracy", "robust_inaccuracy", "selection_rate"]
    fig, ax = new_figure(7.0, 4.0)
    width = 0.8 / len(metrics)
    xs = np.arange(len(table))
    for k, metric in enumerate(metrics):
        values = 100 * table[metric].to_numpy(dtype=float)
        offset = (k - (len(metrics) - 1) / 2) * width
        bars = ax.bar(xs + offset, np.nan_to_num(values), width, label=LABELS[metric])
        for bar, v in zip(bars, values, strict=True):
            if not math.isnan(v):
                ax.annotate(f"{v:.0f}", (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center",
                            va="bottom", fontsize=7, xytext=(0, 1), textcoords="offset points")
    ax.set_xticks(xs, table["classifier"])
    ax.set_ylabel("% of test points")
    ax.set_ylim(0, 110)
    ax.set_title(f"{dataset}: robust accuracy and robust inaccuracy ({threat})")
    ax.legend(fontsize=8, ncols=2, loc="upper left")
    ax.grid(axis="y", alpha=0.3)
    save(fig, Path(out))


def _pick(colors: Sequence[str], mask: np.ndarray) -> list[str]:
    return [c for c, m in zip(colors, mask, strict=True) if m]


@register("era-gauss3")
def era_gauss3(records: Mapping[str, str], grids: Mapping[str, str], out: str,
               order: Sequence[str] | None = None) -> None:
    """Decision regions of each model on the 2-D gauss3 data (from its grid records), with the test points
    marked robust-accurate, robust-inaccurate or non-robust (from its robustness records) and the rates in
    each panel's legend; panels in ``order`` (default: the order of ``records``)."""
    from matplotlib.colors import ListedColormap
    from matplotlib.lines import Line2D

    names = list(order) if order is not None else list(records)
    fig, axes = new_figure(4.2 * len(names), 4.4)
    fig.clf()
    axes = fig.subplots(1, len(names), squeeze=False)[0]
    for ax, name in zip(axes, names, strict=True):
        pts, meta = read_records(records[name])
        grid, gmeta = read_records(grids[name])
        size = int(gmeta["grid_size"])
        g0 = grid["x0"].to_numpy().reshape(size, size)
        g1 = grid["x1"].to_numpy().reshape(size, size)
        pred = grid["prediction"].to_numpy().reshape(size, size)
        n_classes = int(max(pred.max(), pts["label"].max())) + 1
        cmap = ListedColormap(CLASS_COLORS[:n_classes])
        ax.pcolormesh(g0, g1, pred, cmap=cmap, vmin=-0.5, vmax=n_classes - 0.5, alpha=0.25, shading="auto")
        colors = [CLASS_COLORS[int(c)] for c in pts["label"]]
        ra = pts["robust_accurate"].astype(bool).to_numpy()
        ri = pts["robust_inaccurate"].astype(bool).to_numpy()
        nr = ~pts["robust"].astype(bool).to_numpy()
        n = len(pts)
        x0, x1 = pts["x0"].to_numpy(), pts["x1"].to_numpy()
        ax.scatter(x0[nr], x1[nr], s=14, facecolors="none", edgecolors=_pick(colors, nr), linewidths=0.8)
        ax.scatter(x0[ra], x1[ra], s=14, c=_pick(colors, ra), edgecolors="k", linewidths=0.3)
        ax.scatter(x0[ri], x1[ri], s=40, c="k", marker="x", linewidths=1.2)
        handles = [
            Line2D([], [], ls="", marker="o", mfc="0.5", mec="k", mew=0.3,
                   label=f"robust accurate {100 * ra.mean():.1f}%"),
            Line2D([], [], ls="", marker="x", color="k", mew=1.2, label=f"robust inaccurate {100 * ri.mean():.1f}%"),
            Line2D([], [], ls="", marker="o", mfc="none", mec="0.4", label=f"non-robust {100 * nr.mean():.1f}%"),
        ]
        acc = pts["correct"].astype(bool).mean()
        ax.set_title(f"{name} — clean accuracy {100 * acc:.1f}% (n = {n})", fontsize=10)
        ax.set_aspect("equal")
        ax.set_xlim(g0.min(), g0.max())
        ax.set_ylim(g1.min(), g1.max())
        ax.legend(handles=handles, fontsize=7, loc="lower right", framealpha=0.85,
                  title=f"robustness at {meta.get('norm')} ε = {meta.get('eps'):g}", title_fontsize=7)
        ax.set_xticks([])
        ax.set_yticks([])
    save(fig, Path(out))
