"""The unified comparison: every method on the same axes, same test set, same attacks.

x = clean accuracy, y = the worst accuracy over the empirical attacks run on that classifier (AutoAttack,
and the adaptive attack where the model is a composite), at the config's threat. Methods whose point no
other method beats on both axes form the Pareto front. Certified accuracy (a different, provable
guarantee) is reported in the table next to the empirical numbers where the method has one.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..io import write_text
from . import register
from .style import new_figure, save, threat_label

EMPIRICAL = ("autoattack", "adaptive")


def family(classifier: str) -> str:
    """The method a classifier id belongs to (fixed-α mixtures of one mode form one family/curve)."""
    if classifier.startswith("mix-prob-"):
        return "mix-prob"
    if classifier.startswith("mix-logit-"):
        return "mix-logit"
    if classifier.startswith("gauss_aug-"):
        return "gauss_aug"
    return classifier


def comparison_table(summary: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """One row per classifier of ``dataset``: clean, PGD, AutoAttack, adaptive, worst empirical accuracy,
    best certified accuracy (and at which radius / evaluation), and whether it is on the Pareto front."""
    rows = summary[(summary.dataset == dataset) & (summary.metric == "accuracy")]
    wide = rows.pivot_table(index="classifier", columns="evaluation", values="value", aggfunc="first")
    n = rows.groupby("classifier")["n"].max()
    table = pd.DataFrame(index=wide.index)
    for col in ("clean", "pgd", "autoattack", "adaptive"):
        table[col] = wide[col] if col in wide else float("nan")
    table["robust"] = wide[[c for c in EMPIRICAL if c in wide]].min(axis=1, skipna=True)
    table["n"] = n
    cert = summary[(summary.dataset == dataset) & (summary.metric == "certified_accuracy")]
    table["certified"] = float("nan")
    table["certified_at"] = ""
    for name, group in cert.groupby("classifier"):
        positive = group[group.eps > 0]
        if len(positive) and name in table.index:
            smallest = positive[positive.eps == positive.eps.min()]
            best = smallest.loc[smallest.value.idxmax()]
            table.loc[name, "certified"] = best.value
            table.loc[name, "certified_at"] = f"{best.evaluation} {best.norm} r={best.eps:g}"
    table = table.dropna(subset=["clean", "robust"])
    table["family"] = [family(c) for c in table.index]
    table["pareto"] = [
        not any((o.clean >= r.clean and o.robust >= r.robust and (o.clean > r.clean or o.robust > r.robust))
                for _, o in table.iterrows())
        for _, r in table.iterrows()
    ]
    return table.sort_values(["robust", "clean"], ascending=False)


@register("unified")
def unified(summary_path: str, out: str, dataset: str, table_out: str | None = None) -> None:
    """Scatter of clean vs worst-case empirical accuracy of every method, Pareto front drawn; also writes
    the comparison table as CSV (``table_out``) and Markdown (same name, ``.md``)."""
    summary = pd.read_csv(summary_path)
    table = comparison_table(summary, dataset)
    if table_out:
        write_text(table_out, table.to_csv(float_format="%.4f", lineterminator="\n"))
        write_text(Path(table_out).with_suffix(".md"), _markdown(table))
    fig, ax = new_figure(6.5, 5.0)
    markers = {"standard": "o", "pgd_at": "s", "trades": "D", "gauss_aug": "v", "variance": "^", "era": "P",
               "era-composite": "*", "mixnet": "X"}
    for fam, group in table.groupby("family"):
        if fam.startswith("mix-"):
            g = group.assign(alpha=[float(c.rsplit("-", 1)[1]) for c in group.index]).sort_values("alpha")
            ax.plot(100 * g.clean, 100 * g.robust, "-o", ms=4, label=f"{fam} (α curve)", alpha=0.8)
            for _, r in g.iterrows():
                ax.annotate(f"{r.alpha:g}", (100 * r.clean, 100 * r.robust), fontsize=7, xytext=(3, -8),
                            textcoords="offset points")
        else:
            for c, r in group.iterrows():
                ax.scatter(100 * r.clean, 100 * r.robust, marker=markers.get(fam, "o"), s=70, zorder=3, label=c)
    front = table[table.pareto].sort_values("clean")
    ax.step(100 * front.clean, 100 * front.robust, where="post", color="k", lw=1, ls="--", alpha=0.6,
            label="Pareto front")
    threat = threat_label(summary, dataset, EMPIRICAL)
    label = f" ({threat})" if threat else ""
    ax.set_xlabel("clean accuracy (%)")
    ax.set_ylabel(f"worst-case empirical accuracy (%){label}")
    ax.set_title(f"{dataset}: every method, same test set, same attacks")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    save(fig, out)


def _markdown(table: pd.DataFrame) -> str:
    cols = ["clean", "pgd", "autoattack", "adaptive", "robust", "certified", "certified_at", "pareto", "n"]
    lines = ["| classifier | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for name, r in table.iterrows():
        cells = []
        for c in cols:
            v = r[c]
            if c == "n":
                cells.append(str(int(v)))
            elif isinstance(v, float):
                cells.append("" if pd.isna(v) else f"{100 * v:.1f}")
            else:
                cells.append(str(v))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
