"""The unified comparison: every method on the same axes, same test set, same attacks.

x = clean accuracy, y = the empirical worst case at one threat: per point, the worst over every attack run on
that classifier (evaluation ``worst``; where a run has none, the lowest accuracy over the attacks, an upper
bound of it). Methods whose point no other method beats on both axes form the Pareto front. Certificates are
different guarantees and are reported in their own columns, never mixed with the empirical numbers: a
deterministic ℓ2 certificate (randomized smoothing, the mixed classifier's radii) and an (ε, κ)-probabilistic
certificate (Zhang et al. 2023: robust to all but a κ share of uniform perturbations, not to an adversary).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..io import write_text
from . import register
from .style import new_figure, read_summary, save, threat_label

EMPIRICAL = ("worst", "pgd", "margin", "autoattack", "adaptive")
L2_CERTIFICATES = ("certify-rs", "certify-mixed-rs", "certify-mixed-lipschitz", "certify-mixed-lipschitz-sharp")
KINDS = {"robust": "empirical worst case", "certified_l2": "deterministic ℓ2 certificate",
         "certified_prob": "(ε, κ)-probabilistic certificate"}


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
    """One row per classifier of ``dataset`` (pass a summary restricted to one threat): clean, each attack's
    accuracy, ``robust`` = the empirical worst case (``worst`` where the run has it, else the lowest attack
    accuracy), the best deterministic ℓ2 certified accuracy at the smallest positive radius (and where), the
    (ε, κ)-probabilistic certified rate of the sequential test, and whether it is on the Pareto front."""
    rows = summary[(summary.dataset == dataset) & (summary.metric == "accuracy")]
    wide = rows.pivot_table(index="classifier", columns="evaluation", values="value", aggfunc="first")
    n = rows.groupby("classifier")["n"].max()
    table = pd.DataFrame(index=wide.index)
    for col in ("clean", "pgd", "margin", "autoattack", "adaptive", "worst"):
        table[col] = wide[col] if col in wide else float("nan")
    attacks = [c for c in EMPIRICAL if c in wide and c != "worst"]
    lowest = wide[attacks].min(axis=1, skipna=True) if attacks else float("nan")
    table["robust"] = table["worst"].fillna(lowest) if "worst" in wide else lowest
    table["n"] = n
    cert = summary[(summary.dataset == dataset) & (summary.metric == "certified_accuracy")
                   & summary.evaluation.isin(L2_CERTIFICATES)]
    table["certified_l2"] = float("nan")
    table["certified_l2_at"] = ""
    for name, group in cert.groupby("classifier"):
        positive = group[group.eps > 0]
        if len(positive) and name in table.index:
            smallest = positive[positive.eps == positive.eps.min()]
            best = smallest.loc[smallest.value.idxmax()]
            table.loc[name, "certified_l2"] = best.value
            table.loc[name, "certified_l2_at"] = f"{best.evaluation} {best.norm} r={best.eps:g}"
    prob = summary[(summary.dataset == dataset) & (summary.metric == "certified_rate")
                   & (summary.evaluation == "certify-prob-sequential")]
    table["certified_prob"] = prob.groupby("classifier")["value"].first().reindex(table.index)
    table = table.dropna(subset=["clean", "robust"])
    table["family"] = [family(c) for c in table.index]
    table["pareto"] = [
        not any((o.clean >= r.clean and o.robust >= r.robust and (o.clean > r.clean or o.robust > r.robust))
                for _, o in table.iterrows())
        for _, r in table.iterrows()
    ]
    return table.sort_values(["robust", "clean"], ascending=False)


@register("unified")
def unified(summary_path: str, out: str, dataset: str, table_out: str | None = None,
            threat: dict | None = None) -> None:
    """Scatter of clean vs worst-case empirical accuracy of every method, Pareto front drawn; also writes
    the comparison table as CSV (``table_out``) and Markdown (same name, ``.md``)."""
    summary = read_summary(summary_path, threat)
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
    cols = ["clean", "pgd", "margin", "autoattack", "adaptive", "robust", "certified_l2", "certified_l2_at",
            "certified_prob", "pareto", "n"]
    cols = [c for c in cols if c not in ("margin", "adaptive") or table[c].notna().any()]
    lines = ["Accuracies in %. robust: " + KINDS["robust"] + " (per point, the worst over every attack run); "
             "certified_l2: " + KINDS["certified_l2"] + "; certified_prob: " + KINDS["certified_prob"]
             + " (sequential test), not an adversarial guarantee.", "",
             "| classifier | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
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
