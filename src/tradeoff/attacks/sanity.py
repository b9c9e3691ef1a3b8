"""Sanity checks for masked gradients on the run's summary rows (Carlini et al. 2019, "On Evaluating
Adversarial Robustness", Sec. 5, checklist; Athalye et al. 2018, Sec. 3.1).

Each check reads tidy summary rows (dataset, classifier, evaluation, norm, eps, metric, value, n) and
returns one :class:`Check` per classifier it applies to, with ``passed`` and a one-line reason. A failed
check does not change any number: it says that a robust accuracy may be overstated.

* ``monotone_eps``: robust accuracy must not rise with ε (one-sided Fisher exact test at level
  ``alpha`` on the accuracies at two budgets, so binomial noise alone does not fail it).
* ``zero_at_large_eps``: at the largest budget of an ε-sweep that is at least ``large_eps`` the accuracy is
  at most ``zero_tol`` (an unbounded attacker can reach any input).
* ``stronger_not_weaker``: an attack with more steps/restarts/targets (the second of each pair in
  ``stronger``) does not give a higher accuracy than the weaker one beyond noise.
* ``blackbox_vs_whitebox``: Square (a black-box attack run after the white-box ones in AutoAttack) breaks at
  most ``blackbox_tol`` of the points every white-box attack missed.
* ``transfer_vs_whitebox``: transfer attacks (run after the white-box ones on a composite, metric
  ``accuracy_before_transfer`` vs the final accuracy) break at most ``blackbox_tol`` of the points every
  white-box attack missed.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from scipy.stats import fisher_exact

from ..io import provenance, write_records

log = logging.getLogger("tradeoff")

CHECKS = ("monotone_eps", "zero_at_large_eps", "stronger_not_weaker", "blackbox_vs_whitebox",
          "transfer_vs_whitebox")
CHECK_COLUMNS = ["dataset", "classifier", "check", "passed", "reason", "seed"]


@dataclass(frozen=True)
class Check:
    """One check's outcome for one classifier."""

    dataset: str
    classifier: str
    check: str
    passed: bool
    reason: str
    seed: int = 0

    def row(self) -> dict[str, Any]:
        return {**asdict(self), "passed": int(self.passed)}


def _significantly_higher(hi: float, n_hi: int, lo: float, n_lo: int, alpha: float) -> tuple[bool, float]:
    """One-sided Fisher exact test that accuracy ``hi`` (on ``n_hi`` points) exceeds ``lo`` (on ``n_lo``)."""
    if hi <= lo:
        return False, 1.0
    a, b = round(hi * n_hi), round(lo * n_lo)
    _, p = fisher_exact([[a, n_hi - a], [b, n_lo - b]], alternative="greater")
    return bool(p < alpha), float(p)


def sanity_checks(rows: Iterable[Mapping[str, Any]], *, alpha: float = 0.05, zero_tol: float = 0.02,
                  large_eps: float | None = None, blackbox_tol: float = 0.02,
                  monotone_evaluations: Sequence[str] = ("eps-sweep",),
                  stronger: Sequence[tuple[str, str]] = (("pgd", "margin"),)) -> list[Check]:
    """Run every check of :data:`CHECKS` that the rows allow; see the module docstring.

    ``large_eps``: the smallest budget at which ``zero_at_large_eps`` applies (None: the largest budget of
    each sweep, whatever it is). ``stronger``: pairs (weaker evaluation, stronger evaluation).
    Guarantee: every returned check names its classifier and a reason; a check whose inputs are missing
    for a classifier is not returned for it (rather than passed).
    """
    table = [dict(r) for r in rows]
    out: list[Check] = []
    key = sorted({(str(r["dataset"]), str(r["classifier"])) for r in table})
    for ds, clf in key:
        mine = [r for r in table if str(r["dataset"]) == ds and str(r["classifier"]) == clf]

        def acc(evaluation: str, metric: str = "accuracy", mine: list[dict[str, Any]] = mine
                ) -> list[dict[str, Any]]:
            return [r for r in mine if r["evaluation"] == evaluation and r["metric"] == metric]

        for ev in monotone_evaluations:
            for norm in sorted({str(r["norm"]) for r in acc(ev)}):
                pts = sorted(((float(r["eps"]), float(r["value"]), int(r["n"])) for r in acc(ev)
                              if str(r["norm"]) == norm), key=lambda t: t[0])
                if len(pts) < 2:
                    continue
                bad = []
                for i, (e_lo, a_lo, n_lo) in enumerate(pts):
                    for e_hi, a_hi, n_hi in pts[i + 1:]:
                        hit, p = _significantly_higher(a_hi, n_hi, a_lo, n_lo, alpha)
                        if hit:
                            bad.append(f"{a_hi:.1%} at ε={e_hi:g} > {a_lo:.1%} at ε={e_lo:g} (p={p:.2g})")
                grid = ", ".join(f"{a:.1%}@{e:g}" for e, a, _ in pts)
                out.append(Check(ds, clf, "monotone_eps", not bad,
                                 f"{ev} {norm}: " + ("; ".join(bad) if bad else f"non-increasing: {grid}")))
                top_eps, top_acc, _ = pts[-1]
                if large_eps is None or top_eps >= large_eps:
                    ok = top_acc <= zero_tol
                    out.append(Check(ds, clf, "zero_at_large_eps", ok,
                                     f"{ev} {norm}: {top_acc:.1%} at ε={top_eps:g} "
                                     f"({'≤' if ok else '>'} {zero_tol:.0%})"))
        for weak, strong in stronger:
            for rw in acc(weak):
                for rs in acc(strong):
                    if str(rs["norm"]) != str(rw["norm"]) or float(rs["eps"]) != float(rw["eps"]):
                        continue
                    hit, p = _significantly_higher(float(rs["value"]), int(rs["n"]), float(rw["value"]),
                                                   int(rw["n"]), alpha)
                    out.append(Check(ds, clf, "stronger_not_weaker", not hit,
                                     f"{strong} {float(rs['value']):.1%} vs {weak} {float(rw['value']):.1%} "
                                     f"at {rs['norm']} ε={float(rs['eps']):g}" + (f" (p={p:.2g})" if hit else "")))
        for r in mine:
            if r["metric"] != "accuracy_after_square":
                continue
            before = [float(q["value"]) for q in mine if q["evaluation"] == r["evaluation"]
                      and str(q["metric"]).startswith("accuracy_after_") and q["metric"] != "accuracy_after_square"
                      and float(q["eps"]) == float(r["eps"])]
            if not before:
                continue
            drop = min(before) - float(r["value"])
            out.append(Check(ds, clf, "blackbox_vs_whitebox", drop <= blackbox_tol,
                             f"Square broke {drop:.1%} of the points after the white-box attacks of "
                             f"{r['evaluation']} at ε={float(r['eps']):g} (tolerance {blackbox_tol:.0%})"))
        for r in mine:
            if r["metric"] != "accuracy_before_transfer":
                continue
            same = [q for q in mine if q["evaluation"] == r["evaluation"] and float(q["eps"]) == float(r["eps"])]
            after = ([float(q["value"]) for q in same if q["metric"] == "attack_accuracy"]
                     or [float(q["value"]) for q in same if q["metric"] == "accuracy"])
            if not after:
                continue
            drop = float(r["value"]) - after[0]
            out.append(Check(ds, clf, "transfer_vs_whitebox", drop <= blackbox_tol,
                             f"transfer from the base models broke {drop:.1%} of the points every white-box "
                             f"attack of {r['evaluation']} missed at ε={float(r['eps']):g} "
                             f"(tolerance {blackbox_tol:.0%})"))
    return out


def write_sanity(summary: str | os.PathLike, params: Mapping[str, Any], out: str | os.PathLike) -> list[Check]:
    """Run :func:`sanity_checks` (keyword arguments ``params``, as in the config; ``stronger`` as a list of
    pairs) on the summary table ``summary``, separately on the rows of each training seed (its ``seed`` column; all
    rows are seed 0 without it), and write one row per check and seed (:data:`CHECK_COLUMNS`) to ``out``; each failed
    check is logged as a warning. Returns the checks."""
    import pandas as pd

    p = dict(params)
    if "stronger" in p:
        p["stronger"] = [tuple(pair) for pair in p["stronger"]]
    rows = pd.read_csv(summary)
    if "seed" not in rows:
        rows["seed"] = 0
    checks = [replace(c, seed=int(seed)) for seed, part in rows.groupby("seed", sort=True)
              for c in sanity_checks(part.to_dict("records"), **p)]
    failed = [c for c in checks if not c.passed]
    write_records(out, [c.row() for c in checks], {
        "summary": str(summary), "params": params, "n_checks": len(checks), "n_failed": len(failed),
        **provenance({"params": params}, None)}, columns=CHECK_COLUMNS)
    for c in failed:
        log.warning("sanity check failed: %s / %s (seed %d): %s", c.classifier, c.check, c.seed, c.reason)
    log.info("%d sanity checks, %d failed -> %s", len(checks), len(failed), out)
    return checks
