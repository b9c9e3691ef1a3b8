"""Shared matplotlib setup and atomic saving of figures (PNG + PDF)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from ..io import atomic_path  # noqa: E402


def new_figure(width: float = 5.0, height: float = 4.0) -> tuple[plt.Figure, plt.Axes]:
    fig, ax = plt.subplots(figsize=(width, height), dpi=120)
    return fig, ax


def save(fig: plt.Figure, out: str | Path) -> None:
    """Write ``out`` (PNG) and the same name with ``.pdf``, each atomically; close the figure."""
    out = Path(out)
    fig.tight_layout()
    for path, fmt in ((out, "png"), (out.with_suffix(".pdf"), "pdf")):
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, metadata={"CreationDate": None} if fmt == "pdf" else None)
    plt.close(fig)


THREAT_FREE_EVALUATIONS = ("certify-rs", "certify-mixed-lipschitz", "certify-mixed-lipschitz-sharp", "certify-mixed-rs")
"""Summary evaluations that do not depend on the threat (ℓ2 certificates of threat-free models; eps is a radius)."""


def read_summary(summary_path: str | Path, threat: Mapping[str, Any] | None = None):
    """summary.csv, the rows of its first training seed (the smallest in its ``seed`` column, if any), restricted
    to one threat when ``threat`` ({norm, eps}) is given: the rows evaluated at that threat plus the threat-free ℓ2
    certificates. Guarantee: with a threat, each (dataset, classifier, evaluation, metric) of an attack evaluation
    appears at most once."""
    import pandas as pd

    summary = pd.read_csv(summary_path, keep_default_na=False, na_values=[""])
    summary["norm"] = summary["norm"].fillna("")
    if "seed" in summary and len(summary):
        summary = summary[summary.seed == summary.seed.min()].reset_index(drop=True)
    if threat is None:
        return summary
    at = (summary.norm == threat["norm"]) & ((summary.eps - float(threat["eps"])).abs() < 1e-9)
    return summary[at | summary.evaluation.isin(THREAT_FREE_EVALUATIONS)].reset_index(drop=True)


def threat_label(summary, dataset: str, evaluations: tuple[str, ...]) -> str:
    """"Linf ε=0.3" for the first summary row of ``dataset`` under one of ``evaluations`` ("" if none)."""
    rows = summary[(summary.dataset == dataset) & summary.evaluation.isin(evaluations)]
    return f"{rows.norm.iloc[0]} ε={rows.eps.iloc[0]:g}" if len(rows) else ""
