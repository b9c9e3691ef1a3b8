"""Shared matplotlib setup and atomic saving of figures (PNG + PDF)."""

from __future__ import annotations

from pathlib import Path

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


def threat_label(summary, dataset: str, evaluations: tuple[str, ...]) -> str:
    """"Linf ε=0.3" for the first summary row of ``dataset`` under one of ``evaluations`` ("" if none)."""
    rows = summary[(summary.dataset == dataset) & summary.evaluation.isin(evaluations)]
    return f"{rows.norm.iloc[0]} ε={rows.eps.iloc[0]:g}" if len(rows) else ""
