"""Published robust accuracies next to this run's: the comparison table of a results page (no torch).

The published rows are the AutoAttack evaluations of the original models on the AutoAttack leaderboard (Croce &
Hein 2020, "Reliable evaluation of adversarial robustness with an ensemble of diverse parameter-free attacks",
ICML; its repository's MNIST ℓ∞ 0.3 table): clean accuracy, the robust accuracy the paper reported, and the
robust accuracy under standard AutoAttack on the full test set.
Our rows read the run's ``summary.csv`` (clean accuracy on every test point, the per-point worst case over
every attack on the attacked subset, each with its ``n``) and the classifiers' JSON (architecture, epochs), and
carry exact 95% intervals, so that a gap the points cannot resolve is not read as one.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from scipy.stats import binomtest


@dataclass(frozen=True)
class Published:
    """One published model: method, its paper, architecture and training, clean and AutoAttack accuracy (%)."""

    method: str
    source: str
    model: str
    training: str
    clean: float
    reported: float
    autoattack: float
    ours: str | None  # the classifier id of ours that implements the same method, if any


PUBLISHED: dict[tuple[str, str, float], list[Published]] = {
    ("mnist", "Linf", 0.3): [
        Published("PGD-AT", "Madry et al. 2018", "CNN 32/64 ch. 5×5 + max-pool, 1024 units (3.3 M parameters)",
                  "PGD-40 of 0.01, 100,000 iterations of batch 50 (≈ 83 epochs), Adam 1e-4", 98.53, 89.62, 88.50,
                  "pgd_at"),
        Published("TRADES", "Zhang et al. 2019", "CNN 32/32/64/64 ch. 3×3, 200/200 units",
                  "KL-PGD-40 of 0.01, β = 1, 100 epochs, SGD 0.01", 99.48, 95.60, 92.81, "trades"),
        Published("fast AT", "Wong et al. 2020", "CNN 16/32 ch. 4×4 stride 2, 100 units (0.17 M parameters)",
                  "FGSM from a random start, step 0.375, 10 epochs, cyclic Adam (peak 5e-3)", 98.50, 88.77, 82.93,
                  None),
    ],
}
"""Published accuracies (%) by (dataset, norm, ε), from the AutoAttack leaderboard (Croce & Hein 2020)."""

SOURCE = "AutoAttack leaderboard, MNIST ℓ∞ 0.3 (Croce & Hein 2020)"


def exact_interval(k: int, n: int) -> tuple[float, float]:
    """Exact (Clopper-Pearson) 95% interval of a proportion k/n."""
    ci = binomtest(int(k), int(n)).proportion_ci(0.95)
    return float(ci.low), float(ci.high)


def standing(value: tuple[float, int], published: float) -> str:
    """Where an accuracy of ours (value, n) stands against a published one (%): ``above`` or ``below`` when
    its exact 95% interval excludes the published value, ``covers`` when the points cannot tell."""
    acc, n = value
    lo, hi = exact_interval(round(acc * n), n)
    if 100 * lo > published:
        return "above"
    if 100 * hi < published:
        return "below"
    return "covers"


def _row(summary: pd.DataFrame, classifier: str, evaluation: str, eps: float) -> tuple[float, int] | None:
    hit = summary[(summary["classifier"] == classifier) & (summary["evaluation"] == evaluation)
                  & (summary["metric"] == "accuracy") & (summary["eps"].astype(float).sub(eps).abs() < 1e-9)]
    if hit.empty:
        return None
    first = hit.iloc[0]
    return float(first["value"]), int(first["n"])


def _cell(value: tuple[float, int] | None) -> str:
    if value is None:
        return "–"
    acc, n = value
    lo, hi = exact_interval(round(acc * n), n)
    return f"{100 * acc:.2f} [{100 * lo:.1f}, {100 * hi:.1f}] (n = {n:,})"


def describe_model(spec: Mapping[str, Any]) -> str:
    """Architecture and training of one of our classifiers, from its JSON."""
    opts = spec.get("arch_options") or {}
    cfg = (spec.get("config") or {})
    train = cfg.get("train") or {}
    objective = cfg.get("objective_params") or {}
    parts = [f"{spec.get('arch')} {json.dumps(opts, sort_keys=True)}"]
    if train:
        parts.append(f"{train.get('epochs')} epochs, {train.get('optimizer')} {train.get('schedule')} "
                     f"(peak lr {train.get('lr')})")
    if objective:
        parts.append(", ".join(f"{k} {v}" for k, v in sorted(objective.items())))
    return "; ".join(parts)


def comparison(summary: pd.DataFrame, dataset: str, norm: str, eps: float,
               models: Mapping[str, Path] | None = None, minutes: Mapping[str, float] | None = None
               ) -> list[dict[str, str]] | None:
    """Rows of the published models at (``dataset``, ``norm``, ``eps``) and ours next to each (None when no
    paper reports this setting). ``models`` maps our classifier ids to their JSON (architecture, training);
    ``minutes`` to their training CPU minutes. Our clean accuracy is on the whole test set (``clean-all``) when the
    run has it, else on the attacked test split."""
    published = PUBLISHED.get((dataset, norm, round(float(eps), 6)))
    if not published:
        return None
    rows: list[dict[str, str]] = []
    for p in published:
        rows.append({"model": f"{p.method} ({p.source})", "clean": f"{p.clean:.2f}",
                     "robust": f"{p.autoattack:.2f} (AutoAttack; the paper reported {p.reported:.2f})",
                     "architecture and training": f"{p.model}; {p.training}", "source": SOURCE})
        if p.ours is None:
            continue
        spec = {}
        if models and p.ours in models and Path(models[p.ours]).is_file():
            spec = json.loads(Path(models[p.ours]).read_text())
        took = minutes.get(p.ours) if minutes else None
        worst = _row(summary, p.ours, "worst", eps)
        versus = "" if worst is None else "; against the published AutoAttack accuracies: " + ", ".join(
            f"{standing(worst, q.autoattack)} {q.method}'s {q.autoattack:.2f}" for q in published)
        rows.append({
            "model": f"ours: {p.ours}",
            "clean": _cell(_row(summary, p.ours, "clean-all", eps) or _row(summary, p.ours, "clean", eps)),
            "robust": _cell(worst) + " (worst case over every attack" + versus + ")",
            "architecture and training": describe_model(spec) + (
                f"; {took:.1f} CPU min of training" if took is not None and not math.isnan(took) else ""),
            "source": "this run's records",
        })
    return rows


def render(rows: Sequence[Mapping[str, str]]) -> str:
    """A Markdown table of :func:`comparison`'s rows."""
    cols = ["model", "clean", "robust", "architecture and training", "source"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(r[c]).replace("|", "\\|") for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"
