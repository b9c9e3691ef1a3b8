"""One vocabulary of verdicts, Holm's correction across the table, and the claims table's CSV and Markdown.

Verdicts (the same words in code, ``results/claims.csv``, ``results/claims.md`` and the README):

* ``reproduced``: the 95% interval excludes 0 in the claimed direction and the Holm-adjusted p-value is
  below 5%;
* ``contradicted``: the interval excludes 0 in the opposite direction (adjusted p below 5%), or our evidence
  refutes the paper's statement (a bound it claims is violated beyond sampling error);
* ``inconclusive``: the interval covers 0, or the adjusted p-value is not below 5% -- the estimate's sign
  is shown, it is not a verdict;
* ``not testable``: a record is missing, or the design cannot reject: the smallest p-value the points allow
  is at or above 5% (it is stated);
* ``consistent``: a bound or inequality that our numbers do not violate beyond sampling error.

Guarantee: a row's verdict is a function of its interval, its adjusted p-value and its smallest attainable
p-value only (:func:`decide`); Holm's family is every row that can reject.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .stats import Evidence, holm

__all__ = ["REPRODUCED", "CONTRADICTED", "INCONCLUSIVE", "NOT_TESTABLE", "CONSISTENT", "VERDICTS",
           "CLAIM_COLUMNS", "Row", "decide", "inconsistent", "magnitude", "finalize", "claims_frame", "render_markdown"]

REPRODUCED, CONTRADICTED, INCONCLUSIVE, NOT_TESTABLE, CONSISTENT = (
    "reproduced", "contradicted", "inconclusive", "not testable", "consistent")
VERDICTS = (REPRODUCED, CONTRADICTED, INCONCLUSIVE, NOT_TESTABLE, CONSISTENT)
PAPERS, OWN = "paper", "own"
"""Sections: the papers' claims, and our own checks of the papers (simulations, closed forms, bounds)."""

CLAIM_COLUMNS = ["id", "section", "paper", "claim", "paper_setting", "paper_value", "source", "paper_effect",
                 "our_setting", "our_value", "our_effect", "interval", "magnitude", "seeds", "p_raw", "p_holm",
                 "verdict", "reason", "kind", "direction", "estimate", "low", "high"]
LEVEL = 0.05


@dataclass
class Row:
    """One claim at one setting, before Holm's correction: what the paper says and what our test says.

    ``kind`` is ``difference`` (the paper claims the sign ``direction`` of the estimate), ``bound`` (the
    paper claims the estimate, a slack, is ≥ 0) or ``equal`` (the estimate, a gap, is 0).  ``paper_effect``
    is the paper's value of the same estimate in the same ``unit`` (None: the paper gives no number for it).
    ``evidence`` None means not testable for ``note``.
    """

    id: str
    paper: str
    claim: str
    paper_setting: str
    paper_value: str
    source: str
    our_setting: str
    our_value: str = "–"
    evidence: Evidence | None = None
    note: str = ""
    paper_effect: float | None = None
    unit: str = "points"
    kind: str = "difference"
    direction: int = 1
    section: str = PAPERS


def fmt(value: float, unit: str) -> str:
    """A value of ``unit``: ``points`` (a difference of shares, shown ×100), ``margin``, ``samples``, ``share``."""
    if not np.isfinite(value):
        return "–"
    if unit == "points":
        return f"{100 * value:+.1f} points"
    if unit == "share":
        return f"{100 * value:.1f}%"
    if unit == "samples":
        return f"{value:+.0f} samples"
    return f"{value:+.3f}"


def fmt_interval(interval: tuple[float, float], unit: str) -> str:
    lo, hi = interval
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return "–"
    return f"[{fmt(lo, unit).split(' ')[0]}, {fmt(hi, unit)}]"


def fmt_p(p: float) -> str:
    return "–" if not np.isfinite(p) else f"{p:.2g}"


def _oriented(interval: tuple[float, float], direction: int) -> tuple[float, float]:
    return (interval[0], interval[1]) if direction > 0 else (-interval[1], -interval[0])


def decide(evidence: Evidence | None, direction: int = 1, kind: str = "difference",
           adjusted: float | None = None, level: float = LEVEL) -> str:
    """The verdict of one test (see the module docstring); ``adjusted`` is its Holm-adjusted p-value.

    Never ``reproduced`` or ``contradicted`` unless the interval excludes 0 on that side; never a verdict
    other than ``not testable`` when the design's smallest attainable p-value is at or above ``level``.
    """
    if evidence is None or not np.isfinite(evidence.estimate) or not np.all(np.isfinite(evidence.interval)):
        return NOT_TESTABLE
    if evidence.min_pvalue >= level:
        return NOT_TESTABLE
    p = evidence.pvalue if adjusted is None else adjusted
    significant = np.isfinite(p) and p < level
    lo, hi = _oriented(evidence.interval, direction)
    if kind == "bound":
        return CONTRADICTED if hi < 0 and significant else CONSISTENT
    if kind == "equal":
        return CONTRADICTED if (lo > 0 or hi < 0) and significant else CONSISTENT
    if lo > 0 and significant:
        return REPRODUCED
    if hi < 0 and significant:
        return CONTRADICTED
    return INCONCLUSIVE


def magnitude(paper: float | None, ours: float, kind: str = "difference") -> str:
    """A note comparing our effect with the paper's: direction and ratio (e.g. "same direction, 22× smaller")."""
    if kind != "difference":
        return "a bound or identity: no effect size"
    if paper is None or not np.isfinite(paper):
        return "the paper gives no number for this effect"
    if not np.isfinite(ours):
        return "–"
    if ours == 0 or np.sign(ours) != np.sign(paper):
        return "opposite direction or none" if ours == 0 else "opposite direction"
    ratio = abs(ours) / abs(paper)
    if 0.8 <= ratio <= 1.25:
        return "same direction, similar size"
    times = 1 / ratio if ratio < 1 else ratio
    return f"same direction, {times:.1f}× {'smaller' if ratio < 1 else 'larger'}" if times < 10 else \
        f"same direction, {times:.0f}× {'smaller' if ratio < 1 else 'larger'}"


def _seeds(evidence: Evidence | None, unit: str) -> str:
    if evidence is None or not evidence.seeds:
        return "–"
    if len(evidence.seeds) == 1:
        return "1 seed"
    s = np.asarray(evidence.seeds)
    return f"{len(s)} seeds: {fmt(s.min(), unit)} to {fmt(s.max(), unit)} (sd {fmt(s.std(ddof=1), unit)})"


def _reason(row: Row, verdict: str, adjusted: float, level: float) -> str:
    ev = row.evidence
    note = f"; {row.note}" if row.note else ""
    if ev is None or not np.isfinite(ev.estimate):
        return (row.note or "no estimate").strip()
    if verdict == NOT_TESTABLE:
        return (f"the design cannot reject: the smallest p-value these points allow is {ev.min_pvalue:.2g} "
                f"≥ {level:g}{note}")
    test = f" ({ev.test}; Holm-adjusted p = {fmt_p(adjusted)})"
    lo, hi = _oriented(ev.interval, row.direction)
    if verdict == REPRODUCED:
        return "the 95% interval excludes 0 in the claimed direction" + test + note
    if verdict == CONTRADICTED and row.kind != "difference":
        return "the bound is violated beyond sampling error" + test + note
    if verdict == CONTRADICTED:
        return "the 95% interval excludes 0 in the opposite direction" + test + note
    if verdict == CONSISTENT:
        return "no violation beyond sampling error" + test + note
    sign = "the claimed" if row.direction * ev.estimate > 0 else "the opposite" if ev.estimate != 0 else "no"
    if lo > 0 or hi < 0:
        return (f"the estimate has {sign} sign and the 95% interval excludes 0, but not after Holm's correction "
                f"across the table" + test + note)
    return f"the estimate has {sign} sign; the 95% interval covers 0" + test + note


def finalize(rows: Sequence[Row], level: float = LEVEL) -> list[dict[str, str]]:
    """The table's rows (columns :data:`CLAIM_COLUMNS`), with Holm's correction across every testable row."""
    raw = [r.evidence.pvalue if r.evidence is not None and np.isfinite(r.evidence.estimate)
           and r.evidence.min_pvalue < level else math.nan for r in rows]
    adjusted = holm(raw)
    out = []
    for r, p, adj in zip(rows, raw, adjusted, strict=True):
        verdict = decide(r.evidence, r.direction, r.kind, adj, level)
        ev = r.evidence
        est = ev.estimate if ev is not None else math.nan
        out.append({
            "id": r.id, "section": r.section, "paper": r.paper, "claim": r.claim,
            "paper_setting": r.paper_setting, "paper_value": r.paper_value, "source": r.source,
            "paper_effect": fmt(r.paper_effect, r.unit) if r.paper_effect is not None else "–",
            "our_setting": r.our_setting, "our_value": r.our_value,
            "our_effect": fmt(est, r.unit) if r.kind == "difference" or not np.isfinite(est)
            else f"{'slack' if r.kind == 'bound' else 'gap'} {fmt(est, r.unit)}",
            "interval": fmt_interval(ev.interval, r.unit) if ev is not None else "–",
            "magnitude": magnitude(r.paper_effect, est, r.kind) if verdict != NOT_TESTABLE else "–",
            "seeds": _seeds(ev, r.unit), "p_raw": fmt_p(p), "p_holm": fmt_p(adj), "verdict": verdict,
            "reason": _reason(r, verdict, adj, level), "kind": r.kind, "direction": r.direction,
            "estimate": est, "low": ev.interval[0] if ev is not None else math.nan,
            "high": ev.interval[1] if ev is not None else math.nan})
    return out


def inconsistent(rows: Sequence[Mapping[str, Any]], level: float = LEVEL) -> list[str]:
    """Rows whose verdict does not follow from their own interval and adjusted p-value (empty when sound).

    ``reproduced`` needs the interval on the claimed side of 0, ``contradicted`` on the other side (for a bound:
    below 0), both with an adjusted p-value below ``level``; ``inconclusive`` and ``consistent`` must not have
    both; ``not testable`` rows carry no p-value in Holm's family.
    """
    bad = []
    for r in rows:
        lo, hi = _oriented((float(r["low"]), float(r["high"])), int(r["direction"]))
        p = float(r["p_holm"]) if r["p_holm"] != "–" else math.nan
        significant = np.isfinite(p) and p < level
        above, below = significant and lo > 0, significant and hi < 0
        ok = {REPRODUCED: r["kind"] == "difference" and above,
              CONTRADICTED: below if r["kind"] != "equal" else (above or below),
              INCONCLUSIVE: r["kind"] == "difference" and not (above or below),
              CONSISTENT: r["kind"] != "difference" and not below and not (r["kind"] == "equal" and above),
              NOT_TESTABLE: not np.isfinite(p)}.get(r["verdict"], False)
        if not ok:
            bad.append(f"{r['id']}: {r['verdict']} with interval [{lo:g}, {hi:g}] and Holm p {r['p_holm']}")
    return bad


def claims_frame(rows: Sequence[Mapping[str, str]]) -> pd.DataFrame:
    """The rows as a frame with the columns of ``results/claims.csv``."""
    return pd.DataFrame(list(rows), columns=CLAIM_COLUMNS)


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def verdict_counts(rows: Sequence[Mapping[str, str]]) -> str:
    """``"3 reproduced, 1 contradicted, ..."`` in the order of :data:`VERDICTS`."""
    return ", ".join(f"{sum(r['verdict'] == v for r in rows)} {v}" for v in VERDICTS)


_HEADER = ["| claim | paper: setting, value (source) | paper effect | ours: setting, value | our effect [95% interval] "
           "| magnitude | seeds | p raw / Holm | verdict | reason |", "|---|---|---|---|---|---|---|---|---|---|"]


def _line(r: Mapping[str, str]) -> str:
    return "| " + " | ".join(_cell(x) for x in (
        r["claim"], f"{r['paper_setting']}: {r['paper_value']} ({r['source']})", r["paper_effect"],
        f"{r['our_setting']}: {r['our_value']}", f"{r['our_effect']} {r['interval']}", r["magnitude"], r["seeds"],
        f"{r['p_raw']} / {r['p_holm']}", f"**{r['verdict']}**", r["reason"])) + " |"


def render_markdown(rows: Sequence[Mapping[str, str]], choices: str = "") -> str:
    """``results/claims.md``: the verdict counts, the papers' claims per paper, our own checks, the choices."""
    tested = sum(r["p_holm"] != "–" for r in rows)
    lines = ["## Claims", "",
             "Each paper's claim at the paper's setting where this run can reach it: the paper's effect and ours "
             "side by side, a 95% interval (exact binomial for one share; a bootstrap over the test points -- and "
             "over the training seeds when there are several -- for a difference, with the exact McNemar test for "
             "paired 0/1 outcomes of one seed), the raw p-value and Holm's adjusted one across the "
             f"{tested} rows that can reject (family-wise error 5%). Verdicts use the adjusted p-values: "
             "*reproduced* / *contradicted* (interval excludes 0 in the claimed / opposite direction), "
             "*inconclusive* (the estimate's sign is shown, not a verdict), *not testable* (the smallest "
             "attainable p-value is stated), *consistent* (a bound our numbers do not violate).", "",
             "Verdicts: " + verdict_counts(rows) + ".", ""]
    papers = [r for r in rows if r["section"] == PAPERS]
    for paper in dict.fromkeys(r["paper"] for r in papers):
        lines += [f"### {paper or 'other'}", "", *_HEADER, *(_line(r) for r in papers if r["paper"] == paper), ""]
    own = [r for r in rows if r["section"] == OWN]
    if own:
        lines += ["### Our own checks of the papers", "",
                  "Simulations, closed forms and bounds that test a paper's statement (or our implementation of "
                  "it) rather than an experimental result.", "", *_HEADER, *(_line(r) for r in own), ""]
    if choices:
        lines += [choices.strip(), ""]
    return "\n".join(lines)
