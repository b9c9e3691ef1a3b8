"""Clean vs AutoAttack accuracy of the base models."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from . import register
from .style import new_figure, read_summary, save, threat_label


def accuracy_table(summary: pd.DataFrame, dataset: str, evaluation: str) -> pd.Series:
    """accuracy per classifier for one evaluation of one dataset."""
    rows = summary[(summary.dataset == dataset) & (summary.evaluation == evaluation)
                   & (summary.metric == "accuracy")]
    return rows.set_index("classifier")["value"]


@register("base-tradeoff")
def base_tradeoff(summary_path: str, out: str, dataset: str, classifiers: list[str],
                  threat: dict | None = None) -> None:
    """Scatter of clean vs AutoAttack accuracy, one point per base model, from summary.csv alone."""
    summary = read_summary(summary_path, threat)
    clean = accuracy_table(summary, dataset, "clean")
    robust = accuracy_table(summary, dataset, "autoattack")
    fig, ax = new_figure()
    for name in classifiers:
        if name in clean and name in robust:
            ax.scatter(100 * clean[name], 100 * robust[name], s=50, zorder=3)
            ax.annotate(name, (100 * clean[name], 100 * robust[name]), textcoords="offset points",
                        xytext=(5, 5), fontsize=9)
    ax.set_xlabel("clean accuracy (%)")
    label = threat_label(summary, dataset, ("autoattack",))
    ax.set_ylabel(f"AutoAttack accuracy (%) {label}")
    ax.set_title(f"{dataset}: base models")
    ax.grid(alpha=0.3)
    save(fig, Path(out))
