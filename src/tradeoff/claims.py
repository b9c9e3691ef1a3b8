"""The papers' headline claims, checked on per-point records: one row per claim with an interval and a verdict.

Inputs
------
``records``: a mapping ``{(classifier, evaluation, threat_id): record}`` where a record is a path to a CSV
written by :func:`tradeoff.io.write_records` (a missing file is allowed: the claims that need it are *not
testable*) or an already loaded :class:`pandas.DataFrame`.  ``threat_id`` is the threat's path component
(e.g. ``linf-0.3``; its trailing number is read as ε to order threats) or ``none`` for records that do
not depend on a threat.  The keys each claim reads (``<t>`` = every threat id present):

============================================  ==========================================================
key                                           columns used (record kind)
============================================  ==========================================================
(c, ``worst`` | ``adaptive`` | ``autoattack``  ``label``, ``clean_prediction``, ``correct`` (attack
| ``pgd``, <t>) for ``standard``, the robust   records, :data:`tradeoff.attacks.evaluate.RECORD_COLUMNS`; the first
base models, ``mix-prob-<a>``,                 evaluation present in :attr:`ClaimOptions.robust_evaluations`
``mix-logit-<a>``, ``mixnet``                  is used, its clean columns give the clean accuracy)
(``tsipras-<name>``, ``exact``, <t>)          ``clean_correct``, ``correct`` (exact worst case, linear models)
(robust base, ``confidence``, <t>)            ``clean_margin``, ``clean_correct``, ``adv_margin``, ``adv_correct``
(c, ``robustness``, <t>) for ``era``,         ``correct``, ``robust_accurate``, ``robust_inaccurate`` (robust
``trades``, ``standard``                       accuracy / inaccuracy records, attack on the own prediction)
(composite, ``composite``, <t>)               ``correct``, ``robust_accurate``, ``robust_inaccurate``
(c, ``certify-prob-sequential`` |             ``label``, ``reference``, ``outcome``, ``samples``
``certify-prob-fixed``, <t>)
(``gauss_aug-<s>``, ``certify-rs``, none)     ``label``, ``prediction``, ``radius`` (Cohen et al.'s CERTIFY)
(``gauss_aug-<s>``, ``certify-mixed``, none)  ``label``, ``alpha``, ``prediction``, ``radius_rs``,
                                              ``radius_lipschitz`` (the mixed classifier's certificates)
============================================  ==========================================================

``summary``: the frame of ``results/summary.csv`` (only the closed forms of the linear models are read from
it: ``tsipras-<name>`` / ``theory`` rows, population values that no record holds).

Statistics
----------
A single accuracy gets the exact (Clopper-Pearson) 95% interval of ``scipy.stats.binomtest``.  A difference
between two classifiers on the same test points gets a paired bootstrap (points resampled with their
outcomes under both classifiers; ``ClaimOptions.resamples`` resamples, seeded) percentile 95% interval;
when both outcomes are 0/1 the exact McNemar test (``binomtest`` on the discordant pairs) must also reject
at 5%, because the percentile bootstrap is too optimistic when only a handful of points differ.  Verdicts:

* ``reproduced``: the interval excludes 0 in the claimed direction (and McNemar rejects, where it applies);
* ``same direction, not significant``: the point estimate has the claimed sign, the interval covers 0;
* ``not reproduced``: the point estimate has the other sign (or is 0);
* ``not testable``: a record the claim needs is missing, or the setting cannot express it (the reason says which).

Claims of the form "a bound holds" or "two numbers match" are *reproduced* unless the records show a
significant violation.  Guarantee: every row is computed from the records and the summary only, and no
missing or unreadable input raises: it yields a ``not testable`` row naming it.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "CLAIM_COLUMNS",
    "VERDICTS",
    "ClaimOptions",
    "Records",
    "proportion_interval",
    "bootstrap_interval",
    "mcnemar_pvalue",
    "decide",
    "evaluate_claims",
    "claims_frame",
    "render_markdown",
]

CLAIM_COLUMNS = ["id", "paper", "claim", "paper_setting", "paper_value", "source", "our_setting", "our_value",
                 "interval", "verdict", "reason"]
REPRODUCED, SAME, NOT_REPRODUCED, NOT_TESTABLE = ("reproduced", "same direction, not significant",
                                                  "not reproduced", "not testable")
VERDICTS = (REPRODUCED, SAME, NOT_REPRODUCED, NOT_TESTABLE)

RecordMap = Mapping[tuple[str, str, str], "str | os.PathLike[str] | pd.DataFrame"]

TSIPRAS = "Tsipras et al. 2019"
BAI = "Bai et al. 2023 (mixing classifiers)"
BAI_AS = "Bai et al. 2024 (adaptive smoothing)"
ERA = "Merkli et al. 2023 (ERA)"
ZHANG = "Zhang et al. 2023 (certified probabilistic robustness)"
COHEN = "Cohen et al. 2019 (randomized smoothing)"


@dataclass(frozen=True)
class ClaimOptions:
    """Which classifiers play which role, and the statistical settings."""

    standard: str = "standard"
    robust_base: str = "pgd_at"
    """The robust base model of the fixed-weight mixtures and the mixing network."""
    robust_models: tuple[str, ...] = ("pgd_at", "trades")
    """Adversarially trained models whose standard accuracy is compared with the standard model's."""
    robust_evaluations: tuple[str, ...] = ("worst", "adaptive", "autoattack", "pgd")
    """Attack records in order of preference: the first present gives a classifier's robust accuracy."""
    era_composites: Mapping[str, str] = field(default_factory=lambda: {"era": "era-composite",
                                                                      "trades": "era-composite-trades"})
    """Branch model -> id of its composite with the standard model (same selector, same attack)."""
    prob_trained: str = "variance"
    prob_tests: tuple[str, ...] = ("sequential", "fixed")
    clean_tolerance: float = 0.01
    """"At (almost) no clean cost" / "at equal clean accuracy": a clean-accuracy loss up to this is allowed."""
    confidence: float = 0.95
    resamples: int = 2000
    seed: int = 0
    # the simulation of the paper's per-sample probabilistic test (Zhang et al. 2023, Algorithm 2)
    kappa: float = 0.01
    alpha: float = 0.01
    n_max: int = 1000
    growth: float = 2.0
    first_look_share: float = 0.9
    simulations: int = 20_000
    naive_step: int = 1
    """The paper's test looks after every ``naive_step`` samples (Algorithm 2: after each sample)."""
    rs_radius: float = 0.5
    """The large ℓ2 radius at which randomized smoothing's certified accuracies are compared."""


# ------------------------------------------------------------------------------------------- records


class Records:
    """Lazy, cached access to the record mapping; a missing or unreadable record is ``None`` with a reason."""

    def __init__(self, records: RecordMap) -> None:
        self._raw = dict(records)
        self._cache: dict[tuple[str, str, str], pd.DataFrame | None] = {}
        self.problems: dict[tuple[str, str, str], str] = {}

    def keys(self) -> list[tuple[str, str, str]]:
        return list(self._raw)

    def get(self, classifier: str, evaluation: str, threat: str) -> pd.DataFrame | None:
        key = (classifier, evaluation, threat)
        if key not in self._cache:
            self._cache[key] = self._load(key)
        return self._cache[key]

    def _load(self, key: tuple[str, str, str]) -> pd.DataFrame | None:
        value = self._raw.get(key)
        if value is None:
            self.problems[key] = "no such record in this run"
            return None
        if isinstance(value, pd.DataFrame):
            return value
        path = Path(value)
        if not path.is_file():
            self.problems[key] = f"{path} is missing"
            return None
        try:
            from .io import read_records, sidecar

            return read_records(path)[0] if sidecar(path).is_file() else pd.read_csv(path)
        except Exception as exc:  # noqa: BLE001 -- an unreadable record makes its claims not testable
            self.problems[key] = f"{path} is unreadable ({exc})"
            return None

    def threats(self) -> list[str]:
        """Threat ids present (not ``none``), ordered by their ε."""
        return sorted({t for _, _, t in self._raw if t != "none"}, key=lambda t: (threat_eps(t), t))

    def classifiers(self, pattern: str) -> list[str]:
        return sorted({c for c, _, _ in self._raw if re.fullmatch(pattern, c)})

    def robust(self, classifier: str, threat: str, preference: Sequence[str]) -> tuple[pd.DataFrame | None, str]:
        """The first attack record of ``classifier`` at ``threat`` in ``preference`` order, and its evaluation."""
        for evaluation in preference:
            frame = self.get(classifier, evaluation, threat)
            if frame is not None:
                return frame, evaluation
        return None, preference[0]

    def why(self, classifier: str, evaluations: Sequence[str], threat: str) -> str:
        """Why no record of ``classifier`` at ``threat`` could be used (missing, or unreadable and why)."""
        found = [self.problems[k] for e in evaluations if (k := (classifier, e, threat)) in self._raw
                 and k in self.problems]
        return f"no {'/'.join(evaluations)} record of {classifier} at {threat}" + (
            f" ({'; '.join(found)})" if found else "")


ANY = "any threat"
"""Stand-in threat id of a claim whose records exist at no threat (its one row is then not testable)."""


def _threats_for(recs: Records, classifiers: Sequence[str] | str, evaluations: Sequence[str]) -> list[str]:
    """Threat ids at which some classifier (a list, or a regular expression) has a record of an evaluation.

    A claim is checked at each of them, so a stage that runs at only some threats adds rows only there;
    with none, the claim's one row is ``not testable`` (threat id :data:`ANY`).
    """
    def match(c: str) -> bool:
        return bool(re.fullmatch(classifiers, c)) if isinstance(classifiers, str) else c in classifiers

    found = {t for c, e, t in recs.keys() if match(c) and e in evaluations and t != "none"}
    return sorted(found, key=lambda t: (threat_eps(t), t)) or [ANY]


def _cid(base: str, threat: str) -> str:
    return base if threat == ANY else f"{base}-{threat}"


def threat_eps(threat: str) -> float:
    """ε from a threat id such as ``linf-0.3`` (inf if none can be read)."""
    match = re.search(r"(\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)$", threat)
    return float(match.group(1)) if match else math.inf


# ---------------------------------------------------------------------------------------- statistics


def proportion_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper-Pearson) two-sided interval for a binomial proportion; covers p with prob. >= confidence."""
    from scipy import stats

    if n <= 0:
        return (math.nan, math.nan)
    ci = stats.binomtest(int(k), int(n)).proportion_ci(confidence_level=confidence, method="exact")
    return float(ci.low), float(ci.high)


def bootstrap_interval(statistic: Callable[[np.ndarray], np.ndarray], n: int, seed: int, resamples: int = 2000,
                       confidence: float = 0.95) -> tuple[float, float]:
    """Percentile interval of ``statistic`` over ``resamples`` paired bootstrap resamples of the n points.

    ``statistic`` receives an int array of shape [resamples, n] (row j: the point indices of resample j,
    drawn with replacement) and returns the [resamples] values; every classifier's outcomes are indexed by
    the same rows, which keeps the pairing.  Seeded: the same inputs give the same interval.
    """
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(resamples, n))
    values = np.asarray(statistic(idx), dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return (math.nan, math.nan)
    tail = (1.0 - confidence) / 2.0
    return float(np.quantile(values, tail)), float(np.quantile(values, 1.0 - tail))


def mcnemar_pvalue(a: np.ndarray, b: np.ndarray) -> float:
    """Exact two-sided McNemar p-value for paired 0/1 outcomes: binomial test on the discordant pairs."""
    from scipy import stats

    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(~a & b))
    if only_a + only_b == 0:
        return 1.0
    return float(stats.binomtest(only_a, only_a + only_b, 0.5).pvalue)


def decide(estimate: float, interval: tuple[float, float], direction: int = 1, pvalue: float | None = None,
           level: float = 0.05) -> str:
    """Verdict for a claimed sign ``direction`` (+1: positive, -1: negative) of a difference.

    ``reproduced`` iff the interval lies strictly on the claimed side of 0 (and ``pvalue`` < ``level`` when
    given); ``same direction, not significant`` iff the estimate has the claimed sign; else ``not reproduced``.
    """
    if not np.isfinite(estimate):
        return NOT_TESTABLE
    lo, hi = (interval[0], interval[1]) if direction > 0 else (-interval[1], -interval[0])
    if lo > 0 and (pvalue is None or pvalue < level):
        return REPRODUCED
    if direction * estimate > 0:
        return SAME
    return NOT_REPRODUCED


def _paired_difference(a: np.ndarray, b: np.ndarray, opts: ClaimOptions) -> tuple[float, tuple[float, float], float]:
    """mean(a) - mean(b) on paired outcomes, its bootstrap interval and the exact McNemar p-value."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    d = a - b
    interval = bootstrap_interval(lambda idx: d[idx].mean(axis=1), len(d), opts.seed, opts.resamples,
                                  opts.confidence)
    binary = np.isin(a, (0.0, 1.0)).all() and np.isin(b, (0.0, 1.0)).all()
    return float(d.mean()), interval, (mcnemar_pvalue(a, b) if binary else math.nan)


# ------------------------------------------------------------------------------------------ formatting


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%" if np.isfinite(value) else "–"


def _pts(value: float) -> str:
    return f"{100 * value:+.1f} points" if np.isfinite(value) else "–"


def _pts_interval(interval: tuple[float, float]) -> str:
    lo, hi = interval
    return f"[{100 * lo:+.1f}, {100 * hi:+.1f}] points" if np.isfinite(lo) else "–"


def _p(pvalue: float) -> str:
    return "" if not np.isfinite(pvalue) else f"; exact McNemar p = {pvalue:.2g}"


def _row(cid: str, paper: str, claim: str, paper_setting: str, paper_value: str, source: str, our_setting: str,
         our_value: str = "–", interval: str = "–", verdict: str = NOT_TESTABLE, reason: str = "") -> dict[str, str]:
    return {"id": cid, "paper": paper, "claim": claim, "paper_setting": paper_setting, "paper_value": paper_value,
            "source": source, "our_setting": our_setting, "our_value": our_value, "interval": interval,
            "verdict": verdict, "reason": reason}


def _significance_reason(verdict: str, pvalue: float = math.nan,
                         interval: tuple[float, float] = (math.nan, math.nan)) -> str:
    if verdict == REPRODUCED:
        return "the 95% interval excludes 0 in the claimed direction" + _p(pvalue)
    if verdict == SAME:
        if interval[0] > 0 or interval[1] < 0:
            return ("the bootstrap interval excludes 0 but the exact McNemar test does not reject at 5%: too few "
                    "points differ to call it a difference" + _p(pvalue))
        return ("the estimate has the claimed sign but the 95% interval covers 0: the test points cannot tell "
                "this difference from noise" + _p(pvalue))
    if interval[0] == 0 and interval[1] == 0:
        return "no difference at all on these points (the estimate and its interval are 0)" + _p(pvalue)
    return "the estimate has the opposite sign" + _p(pvalue)


def _aligned(*frames: pd.DataFrame) -> list[pd.DataFrame]:
    """The frames restricted to the test points (``index``) they all share, in the same order."""
    common = set(frames[0]["index"])
    for f in frames[1:]:
        common &= set(f["index"])
    keep = sorted(common)
    return [f.drop_duplicates("index").set_index("index").loc[keep].reset_index() for f in frames]


def _clean_correct(frame: pd.DataFrame) -> np.ndarray:
    if "clean_prediction" in frame:
        return (frame["clean_prediction"].to_numpy() == frame["label"].to_numpy()).astype(np.float64)
    return frame["correct"].to_numpy(dtype=np.float64)


def _col(frame: pd.DataFrame, column: str) -> np.ndarray:
    return frame[column].to_numpy(dtype=np.float64)


# ----------------------------------------------------------------------------------- Tsipras et al.


def claim_tsipras_at_lowers_accuracy(recs: Records, summary: pd.DataFrame | None, opts: ClaimOptions) -> list[dict]:
    rows = []
    paper_setting = "MNIST and CIFAR-10, adversarial training vs standard training"
    paper_value = "standard accuracy lower after adversarial training (qualitative)"
    source = "Tsipras et al. 2019, Sec. 2 (Theorem 2.1) and the experiments (unverified against the paper)"
    claim = "Adversarial training lowers standard accuracy"
    for model in opts.robust_models:
        for t in _threats_for(recs, [model], opts.robust_evaluations):
            cid = _cid(f"tsipras-at-lowers-accuracy-{model}", t)
            setting = f"digits, {model} vs {opts.standard}, clean accuracy on the test points, {model} trained at {t}"
            s, _ = recs.robust(opts.standard, t, (*opts.robust_evaluations, "clean"))
            r, _ = recs.robust(model, t, (*opts.robust_evaluations, "clean"))
            if s is None or r is None:
                missing = opts.standard if s is None else model
                rows.append(_row(cid, TSIPRAS, claim, paper_setting, paper_value, source, setting,
                                 reason=recs.why(missing, opts.robust_evaluations, t)))
                continue
            s, r = _aligned(s, r)
            a, b = _clean_correct(s), _clean_correct(r)
            est, ci, pv = _paired_difference(a, b, opts)
            verdict = decide(est, ci, +1, pv)
            rows.append(_row(cid, TSIPRAS, claim, paper_setting, paper_value, source, setting,
                             f"{_pct(a.mean())} → {_pct(b.mean())} ({_pts(-est)})", _pts_interval((-ci[1], -ci[0])),
                             verdict, _significance_reason(verdict, pv, ci) + f"; n = {len(a)} paired points"))
    return rows


def _eps_trend(recs: Records, opts: ClaimOptions, model: str, evaluation: str | None, column: str | None,
               cid: str, claim: str, setting_prefix: str, paper_setting: str, paper_value: str,
               source: str) -> dict:
    threats = [t for t in recs.threats()
               if (recs.get(model, evaluation, t) if evaluation else recs.robust(model, t, opts.robust_evaluations)[0])
               is not None]
    setting = f"{setting_prefix}, clean accuracy of {model} trained at the smallest vs the largest ε"
    if len(threats) < 2:
        return _row(cid, TSIPRAS, claim, paper_setting, paper_value, source, setting,
                    reason=f"{model} has records at {len(threats)} threat budget(s); the trend needs at least 2")
    lo_t, hi_t = threats[0], threats[-1]
    get = ((lambda t: recs.get(model, evaluation, t)) if evaluation
           else (lambda t: recs.robust(model, t, opts.robust_evaluations)[0]))
    small, large = _aligned(get(lo_t), get(hi_t))
    a = _col(small, column) if column else _clean_correct(small)
    b = _col(large, column) if column else _clean_correct(large)
    est, ci, pv = _paired_difference(a, b, opts)
    verdict = decide(est, ci, +1, pv)
    return _row(cid, TSIPRAS, claim, paper_setting, paper_value, source, f"{setting} ({lo_t} vs {hi_t})",
                f"{_pct(a.mean())} at {lo_t} → {_pct(b.mean())} at {hi_t} ({_pts(-est)})",
                _pts_interval((-ci[1], -ci[0])), verdict, _significance_reason(verdict, pv, ci))


def claim_tsipras_eps_trend(recs: Records, summary: pd.DataFrame | None, opts: ClaimOptions) -> list[dict]:
    claim = "The standard accuracy lost to adversarial training grows with ε"
    source = "Tsipras et al. 2019, Theorem 2.1 (the bound tightens as ε grows; unverified against the paper)"
    rows = [_eps_trend(recs, opts, model, None, None, f"tsipras-eps-trend-{model}", claim, "digits",
                       "MNIST / CIFAR-10, increasing ε", "standard accuracy falls as ε grows (qualitative)", source)
            for model in opts.robust_models]
    rows.append(_eps_trend(recs, opts, "tsipras-adversarial", "exact", "clean_correct", "tsipras-eps-trend-synthetic",
                           claim, "Tsipras et al.'s distribution, linear model", "their distribution, ε ≥ 2η",
                           "robust classifier sign(x1) has standard accuracy p < Bayes (qualitative)", source))
    return rows


def claim_tsipras_synthetic(recs: Records, summary: pd.DataFrame | None, opts: ClaimOptions) -> list[dict]:
    claim = "On their distribution, adversarial training trades standard accuracy for robustness"
    paper_setting = "their distribution, η ≥ 4/√d, p ≤ 0.975, ε ≥ 2η"
    paper_value = "standard training > 99% standard accuracy; adversarial training → sign(x1), accuracy p"
    source = "Tsipras et al. 2019, Theorem 2.2 (unverified against the paper)"
    threats = [t for t in recs.threats() if recs.get("tsipras-standard", "exact", t) is not None
               and recs.get("tsipras-adversarial", "exact", t) is not None]
    setting = "trained linear models tsipras-standard vs tsipras-adversarial, clean accuracy"
    if not threats:
        return [_row("tsipras-synthetic-at", TSIPRAS, claim, paper_setting, paper_value, source, setting,
                     reason="no exact records of tsipras-standard and tsipras-adversarial")]
    s, r = _aligned(recs.get("tsipras-standard", "exact", threats[-1]),
                    recs.get("tsipras-adversarial", "exact", threats[-1]))
    a, b = _col(s, "clean_correct"), _col(r, "clean_correct")
    est, ci, pv = _paired_difference(a, b, opts)
    verdict = decide(est, ci, +1, pv)
    return [_row("tsipras-synthetic-at", TSIPRAS, claim, paper_setting, paper_value, source,
                 f"{setting} ({threats[-1]})", f"{_pct(a.mean())} → {_pct(b.mean())} ({_pts(-est)}); robust "
                 f"{_pct(_col(s, 'correct').mean())} → {_pct(_col(r, 'correct').mean())}",
                 _pts_interval((-ci[1], -ci[0])), verdict, _significance_reason(verdict, pv, ci))]


def _theory(summary: pd.DataFrame | None, classifier: str, eps: float) -> float | None:
    """The closed-form accuracy of ``classifier`` at ``eps`` (0: standard; inf: the one positive ε present)."""
    if summary is None or summary.empty:
        return None
    sel = summary[(summary["classifier"] == classifier) & (summary["evaluation"] == "theory")
                  & (summary["metric"] == "accuracy")]
    values = sel["eps"].astype(float)
    sel = sel[values > 0] if math.isinf(eps) else sel[np.isclose(values, eps, rtol=1e-9, atol=1e-12)]
    return float(sel["value"].iloc[0]) if len(sel) else None


def claim_tsipras_closed_forms(recs: Records, summary: pd.DataFrame | None, opts: ClaimOptions) -> list[dict]:
    claim = "The linear models' standard and robust accuracies equal the closed forms"
    paper_setting = "their distribution (y, x1 = ±y w.p. p, x_i ~ N(ηy, 1))"
    paper_value = "closed forms Φ(η√d), Φ((η − ε)√d), p, … (derived from the paper's model)"
    source = "Tsipras et al. 2019, Sec. 2 distribution; closed forms derived and checked by Monte Carlo"
    names = recs.classifiers(r"tsipras-.+")
    checks = []
    for t in recs.threats():
        for name in names:
            frame = recs.get(name, "exact", t)
            if frame is None:
                continue
            for column, eps in (("clean_correct", 0.0), ("correct", threat_eps(t))):
                value = _theory(summary, name, eps)
                if value is not None:
                    x = _col(frame, column)
                    kind = "standard" if eps == 0 else f"robust at {t}"
                    checks.append((name, kind, value, int(x.sum()), len(x)))
    setting = "every linear model's exact record vs its closed form in the summary"
    if not checks:
        return [_row("tsipras-closed-forms", TSIPRAS, claim, paper_setting, paper_value, source, setting,
                     reason="no exact records of tsipras-* models with theory rows in the summary")]
    level = 1 - (1 - opts.confidence) / len(checks)  # Bonferroni over the checks
    worst, outside = None, []
    for name, kind, value, k, n in checks:
        lo, hi = proportion_interval(k, n, level)
        gap = abs(k / n - value)
        if worst is None or gap > worst[0]:
            worst = (gap, name, kind, value, k / n, (lo, hi))
        if not lo <= value <= hi:
            outside.append(f"{name} {kind}: {_pct(k / n)} vs {_pct(value)}")
    gap, name, kind, value, emp, (lo, hi) = worst
    verdict = NOT_REPRODUCED if outside else REPRODUCED
    reason = (f"closed form outside the exact {100 * level:.2f}% interval (Bonferroni over {len(checks)} checks): "
              + "; ".join(outside)) if outside else (
        f"all {len(checks)} closed forms inside their exact {100 * level:.2f}% intervals (Bonferroni)")
    return [_row("tsipras-closed-forms", TSIPRAS, claim, paper_setting, paper_value, source, setting,
                 f"largest gap {100 * gap:.1f} points ({name} {kind}: {_pct(emp)} vs closed form {_pct(value)})",
                 f"[{_pct(lo)}, {_pct(hi)}]", verdict, reason)]


def _bound_ratio(summary: pd.DataFrame | None) -> float | None:
    """p / (1 - p) from the summary's theory rows: robust_bound = p/(1-p) * (1 - standard accuracy)."""
    if summary is None or summary.empty:
        return None
    theory = summary[(summary["evaluation"] == "theory") & summary["classifier"].str.startswith("tsipras-")]
    for name in sorted(set(theory["classifier"])):
        bound = theory[(theory["classifier"] == name) & (theory["metric"] == "robust_bound")]
        std = _theory(summary, name, 0.0)
        if len(bound) and std is not None and std < 1 - 1e-9:
            return float(bound["value"].iloc[0]) / (1 - std)
    return None


def claim_tsipras_theorem(recs: Records, summary: pd.DataFrame | None, opts: ClaimOptions) -> list[dict]:
    claim = "Theorem 2.1: robust accuracy ≤ p/(1−p) · (1 − standard accuracy) at ε ≥ 2η"
    paper_setting = "their distribution, any classifier, ℓ∞ ε ≥ 2η"
    paper_value = "p = 0.95 and 99% standard accuracy give ≤ 19% robust accuracy"
    source = "Tsipras et al. 2019, Theorem 2.1 (unverified against the paper)"
    setting = "every linear model's exact record: p/(1−p)·(1 − clean) − robust on the same points"
    ratio = _bound_ratio(summary)
    if ratio is None:
        return [_row("tsipras-theorem-2.1", TSIPRAS, claim, paper_setting, paper_value, source, setting,
                     reason="no theory rows (robust_bound) in the summary to read p from")]
    results = []
    for t in recs.threats():
        for name in recs.classifiers(r"tsipras-.+"):
            frame = recs.get(name, "exact", t)
            if frame is None:
                continue
            c, r = _col(frame, "clean_correct"), _col(frame, "correct")
            slack = ratio * (1 - c.mean()) - r.mean()
            ci = bootstrap_interval(lambda idx, c=c, r=r: ratio * (1 - c[idx].mean(1)) - r[idx].mean(1), len(c),
                                    opts.seed, opts.resamples, opts.confidence)
            results.append((slack, name, t, ci))
    if not results:
        return [_row("tsipras-theorem-2.1", TSIPRAS, claim, paper_setting, paper_value, source, setting,
                     reason="no exact records of tsipras-* models")]
    violated = [f"{n} at {t}" for s, n, t, ci in results if ci[1] < 0]
    slack, name, t, ci = min(results, key=lambda x: x[0])
    return [_row("tsipras-theorem-2.1", TSIPRAS, claim, paper_setting, paper_value, source, setting,
                 f"smallest slack {_pts(slack)} ({name}, p/(1−p) = {ratio:.3g})", _pts_interval(ci),
                 NOT_REPRODUCED if violated else REPRODUCED,
                 ("significant violation: " + ", ".join(violated)) if violated else
                 f"no model exceeds the bound beyond sampling error ({len(results)} models)")]


# ------------------------------------------------------------------------------------ mixing (Bai et al.)


def _mixtures(recs: Records, mode: str) -> list[tuple[float, str]]:
    return sorted((float(m.group(1)), c) for c in recs.classifiers(rf"mix-{mode}-[0-9.eE+-]+")
                  if (m := re.fullmatch(rf"mix-{mode}-([0-9.eE+-]+)", c)))


def _mixtures_at(recs: Records, mode: str, threat: str, evaluations: Sequence[str]) -> list[tuple[float, str]]:
    """``[(α, mix-<mode>-<α>), ...]`` (sorted by α) of the mixtures with a record of ``evaluations`` at ``threat``."""
    keys = set(recs.keys())
    return [(a, c) for a, c in _mixtures(recs, mode) if any((c, e, threat) in keys for e in evaluations)]


def _curve_points(recs: Records, opts: ClaimOptions, t: str, names: Sequence[str]
                  ) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], list[str], str]:
    """Per classifier (clean correct, robust correct) on the points all share; missing names; evaluations used."""
    frames, missing, used = {}, [], set()
    for name in names:
        frame, ev = recs.robust(name, t, opts.robust_evaluations)
        if frame is None:
            missing.append(name)
        else:
            frames[name] = frame
            used.add(ev)
    if not frames:
        return {}, missing, ""
    aligned = _aligned(*frames.values())
    out = {name: (_clean_correct(f), _col(f, "correct")) for name, f in zip(frames, aligned, strict=True)}
    return out, missing, "/".join(sorted(used))


def claim_mixing_above_chord(recs: Records, summary: pd.DataFrame | None, opts: ClaimOptions) -> list[dict]:
    claim = ("The probability-mixed classifier's (clean, robust) points lie above the chord between the two base "
             "models: robustness is kept while clean accuracy is recovered")
    paper_setting = "CIFAR-10/100, ℓ∞ 8/255, AutoAttack, α ∈ [1/2, 1]"
    paper_value = "most of the robust model's robustness at a much higher clean accuracy (qualitative)"
    source = "Bai et al. 2023, abstract and Sec. 3"
    rows = []
    for t in _threats_for(recs, r"mix-prob-[0-9.eE+-]+", opts.robust_evaluations):
        mixes = _mixtures_at(recs, "prob", t, opts.robust_evaluations)
        cid = _cid("mixing-above-chord", t)
        setting = (f"digits {t}, {opts.standard} + {opts.robust_base}, {len(mixes)} weights α, mean height over "
                   "the mixtures above the chord (held at the base models' robust accuracy outside their clean range)")
        if not mixes:
            rows.append(_row(cid, BAI, claim, paper_setting, paper_value, source, setting,
                             reason="no mix-prob-<α> records"))
            continue
        names = [opts.standard, opts.robust_base, *(c for _, c in mixes)]
        pts, missing, used = _curve_points(recs, opts, t, names)
        if opts.standard in missing or opts.robust_base in missing or len(pts) < 3:
            rows.append(_row(cid, BAI, claim, paper_setting, paper_value, source, setting,
                             reason=f"missing attack records at {t}: {', '.join(missing)}"))
            continue
        g, h = pts[opts.standard], pts[opts.robust_base]
        mixed = [pts[c] for _, c in mixes if c in pts]

        def gap(idx: np.ndarray, g=g, h=h, mixed=mixed) -> np.ndarray:
            cg, rg, ch, rh = (v[idx].mean(axis=1) for v in (*g, *h))
            total = np.zeros(idx.shape[0])
            for c, r in mixed:
                cm, rm = c[idx].mean(axis=1), r[idx].mean(axis=1)
                with np.errstate(divide="ignore", invalid="ignore"):
                    frac = np.where(cg != ch, (cm - ch) / (cg - ch), 0.5)
                # beyond a base model's clean accuracy the chord stays at that model's robust accuracy: a
                # mixture more accurate than g must be at least as robust as g (no extrapolated line)
                frac = np.clip(frac, 0.0, 1.0)
                total += rm - (rh + frac * (rg - rh))
            return total / len(mixed)

        n = len(g[0])
        est = float(gap(np.arange(n)[None, :])[0])
        ci = bootstrap_interval(gap, n, opts.seed, opts.resamples, opts.confidence)
        verdict = decide(est, ci, +1)
        curve = "; ".join(f"α={a:g}: {_pct(pts[c][0].mean())}/{_pct(pts[c][1].mean())}" for a, c in mixes if c in pts)
        rows.append(_row(cid, BAI, claim, paper_setting, paper_value, source, f"{setting}, robust = {used}",
                         f"mean height above the chord {_pts(est)} (clean/robust: {opts.standard} "
                         f"{_pct(g[0].mean())}/{_pct(g[1].mean())}, {opts.robust_base} {_pct(h[0].mean())}/"
                         f"{_pct(h[1].mean())}; {curve})", _pts_interval(ci), verdict,
                         _significance_reason(verdict) + " (paired bootstrap over the test points)"
                         + (f"; missing: {', '.join(missing)}" if missing else "")))
    return rows


def _interp_curve(c: np.ndarray, r: np.ndarray, at: np.ndarray) -> np.ndarray:
    order = np.argsort(c, kind="stable")
    return np.interp(at, c[order], r[order])


def _equal_clean_advantage(pc: np.ndarray, pr: np.ndarray, p_mix: np.ndarray, lc: np.ndarray, lr: np.ndarray,
                           l_mix: np.ndarray) -> tuple[float, int]:
    """Mean of (probability − logit) robust accuracy at equal clean accuracy, and the number of comparisons.

    Each curve is (clean, robust) of its points, joined in order of clean accuracy (both include the base
    models). Each mixture of one mode whose clean accuracy lies within the other curve's clean range is compared
    with the other curve interpolated there: ``r_p − L(c_p)`` for probability mixtures, ``P(c_l) − r_l`` for
    logit mixtures. ``p_mix``/``l_mix`` mark the mixtures (the base models are ends, not comparisons).
    """
    diffs = []
    inside_l = p_mix & (pc >= lc.min()) & (pc <= lc.max())
    diffs.append(pr[inside_l] - _interp_curve(lc, lr, pc[inside_l]))
    inside_p = l_mix & (lc >= pc.min()) & (lc <= pc.max())
    diffs.append(_interp_curve(pc, pr, lc[inside_p]) - lr[inside_p])
    d = np.concatenate(diffs)
    return (float(d.mean()) if d.size else math.nan), int(d.size)


def claim_mixing_prob_vs_logit(recs: Records, summary: pd.DataFrame | None, opts: ClaimOptions) -> list[dict]:
    claim = "Mixing probabilities gives more robust accuracy than mixing logits at equal clean accuracy"
    paper_setting = "CIFAR-10, logits-vs-probabilities ablation"
    paper_value = "probability mixing has the better trade-off (qualitative)"
    source = "Bai et al. 2023, ablation of logit vs probability mixing (unverified against the paper)"
    rows = []
    for t in _threats_for(recs, r"mix-(prob|logit)-[0-9.eE+-]+", opts.robust_evaluations):
        prob = _mixtures_at(recs, "prob", t, opts.robust_evaluations)
        logit = _mixtures_at(recs, "logit", t, opts.robust_evaluations)
        cid = _cid("mixing-prob-vs-logit", t)
        setting = (f"digits {t}, {len(prob)} probability and {len(logit)} logit mixtures of {opts.standard} and "
                   f"{opts.robust_base}, each curve joined through both base models")
        if not prob or not logit:
            absent = "mix-logit-<α>" if prob else "mix-prob-<α>"
            rows.append(_row(cid, BAI, claim, paper_setting, paper_value, source, setting,
                             reason=f"only one mixing mode was evaluated at {t}: no {absent} record (the "
                                    "comparison needs both modes, `mixing.modes: [prob, logit]`)"))
            continue
        names = [opts.standard, opts.robust_base, *(c for _, c in prob), *(c for _, c in logit)]
        pts, missing, used = _curve_points(recs, opts, t, names)
        p_names = [c for _, c in prob if c in pts]
        l_names = [c for _, c in logit if c in pts]
        if opts.standard in missing or opts.robust_base in missing or not p_names or not l_names:
            rows.append(_row(cid, BAI, claim, paper_setting, paper_value, source, setting,
                             reason=f"missing attack records at {t}: {', '.join(missing)}"))
            continue
        bases = [opts.standard, opts.robust_base]
        p_all, l_all = [*bases, *p_names], [*bases, *l_names]
        p_mix = np.array([c not in bases for c in p_all])
        l_mix = np.array([c not in bases for c in l_all])

        def advantage(idx: np.ndarray, pts=pts, p_all=p_all, l_all=l_all, p_mix=p_mix, l_mix=l_mix) -> np.ndarray:
            pc, pr, lc, lr = (np.stack([pts[c][k][idx].mean(axis=1) for c in group], axis=1)
                              for group, k in ((p_all, 0), (p_all, 1), (l_all, 0), (l_all, 1)))
            return np.array([_equal_clean_advantage(pc[j], pr[j], p_mix, lc[j], lr[j], l_mix)[0]
                             for j in range(idx.shape[0])])

        n = len(pts[p_names[0]][0])
        est, compared = _equal_clean_advantage(
            *(np.array([pts[c][k].mean() for c in p_all]) for k in (0, 1)), p_mix,
            *(np.array([pts[c][k].mean() for c in l_all]) for k in (0, 1)), l_mix)
        if not np.isfinite(est):
            rows.append(_row(cid, BAI, claim, paper_setting, paper_value, source, setting,
                             reason="no mixture's clean accuracy lies within the other mode's curve"))
            continue
        ci = bootstrap_interval(advantage, n, opts.seed, opts.resamples, opts.confidence)
        verdict = decide(est, ci, +1)
        curve = "; ".join(f"{c.removeprefix('mix-')}: {_pct(pts[c][0].mean())}/{_pct(pts[c][1].mean())}"
                          for c in [*p_names, *l_names])
        rows.append(_row(cid, BAI, claim, paper_setting, paper_value, source, setting + f", robust = {used}",
                         f"probability minus logit robust accuracy at equal clean accuracy {_pts(est)} (mean over "
                         f"{compared} mixtures, each against the other mode's curve interpolated at its clean "
                         f"accuracy; clean/robust: {curve})", _pts_interval(ci), verdict,
                         _significance_reason(verdict) + f" (paired bootstrap over the {n} test points)"
                         + (f"; missing: {', '.join(missing)}" if missing else "")))
    return rows


def claim_mixing_confidence_gap(recs: Records, summary: pd.DataFrame | None, opts: ClaimOptions) -> list[dict]:
    claim = ("The robust model is more confident on points it gets right under attack than on points it gets "
             "wrong clean")
    paper_setting = "CIFAR-10 robust base model, probability margin"
    paper_value = "mean margin 0.767 (correct, attacked) vs 0.434 (incorrect, clean)"
    source = "Bai et al. 2023, Table I (unverified against the paper)"
    rows = []
    for t in _threats_for(recs, [opts.robust_base], ["confidence"]):
        cid = _cid("mixing-confidence-gap", t)
        setting = f"digits {t}, {opts.robust_base}, probability margin p_y − max_(i≠y) p_i"
        frame = recs.get(opts.robust_base, "confidence", t)
        if frame is None:
            rows.append(_row(cid, BAI, claim, paper_setting, paper_value, source, setting,
                             reason=f"no margin record of {opts.robust_base} at {t}"))
            continue
        adv_ok, adv_m = _col(frame, "adv_correct") > 0, _col(frame, "adv_margin")
        clean_bad, clean_m = _col(frame, "clean_correct") < 1, _col(frame, "clean_margin")
        if not adv_ok.any() or not clean_bad.any():
            rows.append(_row(cid, BAI, claim, paper_setting, paper_value, source, setting,
                             reason="no point is correct under attack" if not adv_ok.any()
                             else "no point is misclassified clean"))
            continue

        def gap(idx: np.ndarray, adv_ok=adv_ok, clean_bad=clean_bad, adv_m=adv_m, clean_m=clean_m) -> np.ndarray:
            a_w, c_w = adv_ok[idx], clean_bad[idx]
            with np.errstate(invalid="ignore", divide="ignore"):
                return (adv_m[idx] * a_w).sum(1) / a_w.sum(1) - (clean_m[idx] * c_w).sum(1) / c_w.sum(1)

        a, c = float(adv_m[adv_ok].mean()), float(clean_m[clean_bad].mean())
        ci = bootstrap_interval(gap, len(frame), opts.seed, opts.resamples, opts.confidence)
        verdict = decide(a - c, ci, +1)
        rows.append(_row(cid, BAI, claim, paper_setting, paper_value, source, setting,
                         f"{a:.3f} (n = {int(adv_ok.sum())}) vs {c:.3f} (n = {int(clean_bad.sum())})",
                         f"[{ci[0]:+.3f}, {ci[1]:+.3f}]", verdict,
                         _significance_reason(verdict) + " (bootstrap over the test points)"))
    return rows


def claim_mixing_certified_radii(recs: Records, summary: pd.DataFrame | None, opts: ClaimOptions) -> list[dict]:
    paper_setting = "α ∈ [1/2, 1], a certifiable robust base model"
    source = "Bai et al. 2023, Theorems 1 and 2 (radii as in the official code)"
    rows = []
    smoothed = sorted({c for c, e, _ in recs.keys() if e == "certify-mixed"})
    for theorem, column in (("Theorem 1 (Lipschitz)", "radius_lipschitz"), ("Theorem 2 (smoothing)", "radius_rs")):
        claim = f"{theorem} gives non-zero certified ℓ2 radii for the mixed classifier with α > 1/2"
        value = "closed-form radius > 0 where the robust model's margin exceeds (1 − α)/α"
        cid = f"mixing-certified-radii-{column.removeprefix('radius_')}"
        frames = [(c, recs.get(c, "certify-mixed", "none")) for c in smoothed]
        frames = [(c, f) for c, f in frames if f is not None]
        if not frames:
            rows.append(_row(cid, BAI, claim, paper_setting, value, source, "digits, mixed certificates",
                             reason="no certify-mixed records (the certification stage is off?)"))
            continue
        parts, lows, failed = [], [], []
        for name, frame in frames:
            for a in sorted(set(frame["alpha"].astype(float))):
                if a <= 0.5:
                    continue  # at α = 1/2 the margin would need to exceed 1: no radius is possible
                sel = frame[frame["alpha"].astype(float) == a]
                ok = (sel["prediction"].to_numpy() == sel["label"].to_numpy()) & (_col(sel, column) > 0)
                k, n = int(ok.sum()), len(sel)
                lo, hi = proportion_interval(k, n, opts.confidence)
                parts.append(f"{name} α={a:g}: {_pct(k / n)}")
                lows.append((lo, hi))
                if not lo > 0:
                    failed.append(f"{name} α={a:g}")
        if not parts:
            rows.append(_row(cid, BAI, claim, paper_setting, value, source, "digits, mixed certificates",
                             reason="no mixing weight above 1/2 was certified"))
            continue
        lo, hi = min(lows)
        rows.append(_row(cid, BAI, claim, paper_setting, value, source,
                         "digits, Gaussian-smoothed robust model, confidence bounds (not point estimates)",
                         "certified accuracy at a radius > 0: " + "; ".join(parts),
                         f"[{_pct(lo)}, {_pct(hi)}] (lowest)",
                         NOT_REPRODUCED if failed else REPRODUCED,
                         ("no certified point (exact interval reaches 0) for " + ", ".join(failed)) if failed
                         else "every α > 1/2 certifies a positive share of points (exact interval above 0)"))
    return rows


# ------------------------------------------------------------------------- adaptive smoothing (mixnet)


def claim_mixnet_vs_fixed(recs: Records, summary: pd.DataFrame | None, opts: ClaimOptions) -> list[dict]:
    claim = ("The mixing network α(x) reaches at least the fixed-α curve's robust accuracy at equal clean "
             "accuracy, under the adaptive attack")
    paper_setting = "CIFAR-10, ℓ∞ 8/255, AutoAttack (RobustBench)"
    paper_value = "95.23% clean / 68.06% AutoAttack"
    source = "Bai et al. 2024, official code README / RobustBench entry"
    rows = []
    mixes = _mixtures(recs, "prob")
    for t in _threats_for(recs, ["mixnet"], ("worst", "adaptive", *opts.robust_evaluations)):
        cid = _cid("mixnet-vs-fixed", t)
        setting = (f"digits {t}, mixnet vs the curve through {opts.standard}, {len(mixes)} mix-prob-α, "
                   f"{opts.robust_base}")
        net, net_ev = recs.robust("mixnet", t, ("worst", "adaptive", *opts.robust_evaluations))
        if net is None:
            rows.append(_row(cid, BAI_AS, claim, paper_setting, paper_value, source, setting,
                             reason=f"no worst/adaptive record of mixnet at {t}"))
            continue
        names = [opts.standard, opts.robust_base, *(c for _, c in mixes)]
        found = {c: recs.robust(c, t, opts.robust_evaluations) for c in names}
        curve = [c for c in names if found[c][0] is not None]
        if len(curve) < 2:
            missing = [c for c in names if found[c][0] is None]
            rows.append(_row(cid, BAI_AS, claim, paper_setting, paper_value, source, setting,
                             reason=f"the fixed-α curve needs ≥ 2 classifiers at {t}; missing: {', '.join(missing)}"))
            continue
        used = "/".join(sorted({found[c][1] for c in curve}))
        net, *aligned = _aligned(net, *(found[c][0] for c in curve))
        nc, nr = _clean_correct(net), _col(net, "correct")
        cc = {c: (_clean_correct(f), _col(f, "correct")) for c, f in zip(curve, aligned, strict=True)}

        def lead(idx: np.ndarray, nc=nc, nr=nr, cc=cc, curve=curve) -> np.ndarray:
            c_net, r_net = nc[idx].mean(axis=1), nr[idx].mean(axis=1)
            c_cur = np.stack([cc[c][0][idx].mean(axis=1) for c in curve], axis=1)
            r_cur = np.stack([cc[c][1][idx].mean(axis=1) for c in curve], axis=1)
            return np.array([r_net[j] - _interp_curve(c_cur[j], r_cur[j], c_net[j:j + 1])[0]
                             for j in range(idx.shape[0])])

        est = float(lead(np.arange(len(nc))[None, :])[0])
        ci = bootstrap_interval(lead, len(nc), opts.seed, opts.resamples, opts.confidence)
        verdict = decide(est, ci, +1)
        rows.append(_row(cid, BAI_AS, claim, paper_setting, paper_value, source,
                         setting + f", mixnet attacked by {net_ev}, curve by {used}",
                         f"mixnet {_pct(nc.mean())} clean / {_pct(nr.mean())} robust; {_pts(est)} above the curve",
                         _pts_interval(ci), verdict,
                         _significance_reason(verdict) + " (paired bootstrap over the test points)"))
    return rows


# --------------------------------------------------------------------------------------------------- ERA


def claim_era_robust_inaccuracy(recs: Records, summary: pd.DataFrame | None, opts: ClaimOptions) -> list[dict]:
    claim = "Training with L_ERA lowers robust inaccuracy compared with TRADES"
    paper_setting = "CIFAR-10, ε∞ 1/255 and 2/255, fine-tuning a robust model"
    paper_value = "up to 97.28% fewer robust-inaccurate samples"
    source = "Merkli et al. 2021 (earlier version), abstract"
    rows = []
    for t in _threats_for(recs, ["era", "trades"], ["robustness"]):
        cid = _cid("era-robust-inaccuracy", t)
        setting = f"digits {t}, era vs trades, robust inaccuracy (attack on the own prediction)"
        e, r = recs.get("era", "robustness", t), recs.get("trades", "robustness", t)
        if e is None or r is None:
            rows.append(_row(cid, ERA, claim, paper_setting, paper_value, source, setting,
                             reason=f"no robustness record of {'era' if e is None else 'trades'} at {t}"))
            continue
        e, r = _aligned(e, r)
        a, b = _col(r, "robust_inaccurate"), _col(e, "robust_inaccurate")
        est, ci, pv = _paired_difference(a, b, opts)
        verdict = decide(est, ci, +1, pv)
        rows.append(_row(cid, ERA, claim, paper_setting, paper_value, source, setting,
                         f"trades {_pct(a.mean())} → era {_pct(b.mean())} ({_pts(-est)})",
                         _pts_interval((-ci[1], -ci[0])), verdict, _significance_reason(verdict, pv, ci)))
    return rows


def _standard_robust(recs: Records, opts: ClaimOptions, t: str) -> tuple[pd.DataFrame | None, str, str]:
    frame = recs.get(opts.standard, "robustness", t)
    if frame is not None:
        return frame, "robust_accurate", "robustness"
    frame, ev = recs.robust(opts.standard, t, opts.robust_evaluations)
    return frame, "correct", ev


def claim_era_composite_gain(recs: Records, summary: pd.DataFrame | None, opts: ClaimOptions) -> list[dict]:
    claim = "The composition (ERA where robust, else standard) raises robust accuracy at (almost) no clean cost"
    paper_setting = "CIFAR-10, ε∞ = 1/255, standard WRN-40-10 + ERA branch"
    paper_value = "robust accuracy 26.2% → 87.8%, natural accuracy 97.8% → 98.0%"
    source = "Merkli et al. 2023, abstract and Table 1"
    comp_id = opts.era_composites.get("era", "era-composite")
    rows = []
    for t in _threats_for(recs, [comp_id], ["composite"]):
        cid = _cid("era-composite-gain", t)
        setting = f"digits {t}, {comp_id} vs {opts.standard}, end-to-end adaptive attack"
        comp = recs.get(comp_id, "composite", t)
        std, col, ev = _standard_robust(recs, opts, t)
        if comp is None or std is None:
            rows.append(_row(cid, ERA, claim, paper_setting, paper_value, source, setting,
                             reason=f"no composite record of {comp_id} at {t}" if comp is None
                             else recs.why(opts.standard, ("robustness", *opts.robust_evaluations), t)))
            continue
        comp, std = _aligned(comp, std)
        gain, ci, pv = _paired_difference(_col(comp, "robust_accurate"), _col(std, col), opts)
        clean, clean_ci, _ = _paired_difference(_col(comp, "correct"), _clean_correct(std), opts)
        verdict = decide(gain, ci, +1, pv)
        reason = _significance_reason(verdict, pv, ci)
        tol = opts.clean_tolerance
        if clean_ci[1] < -tol:
            verdict, reason = NOT_REPRODUCED, f"clean accuracy falls by more than {100 * tol:g} points (significant)"
        elif clean < -tol and verdict == REPRODUCED:
            verdict, reason = SAME, f"robust gain significant, but the clean cost may exceed {100 * tol:g} points"
        rows.append(_row(cid, ERA, claim, paper_setting, paper_value, source, setting + f" (standard: {ev})",
                         f"robust {_pct(_col(std, col).mean())} → {_pct(_col(comp, 'robust_accurate').mean())} "
                         f"({_pts(gain)}); clean {_pts(clean)} {_pts_interval(clean_ci)}; selected "
                         f"{_pct(_col(comp, 'selected').mean()) if 'selected' in comp else '–'}",
                         _pts_interval(ci), verdict, reason))
    return rows


def claim_era_branch(recs: Records, summary: pd.DataFrame | None, opts: ClaimOptions) -> list[dict]:
    claim = "ERA as the robust branch gives the composition more robust accuracy than TRADES as the branch"
    paper_setting = "CIFAR-10 / CIFAR-100, ε∞ 1/255 and 2/255, same selector"
    paper_value = "ERA branch above the TRADES branch (qualitative)"
    source = "Merkli et al. 2023, Sec. 5 (unverified against the paper)"
    era_id = opts.era_composites.get("era", "era-composite")
    tr_id = opts.era_composites.get("trades", "era-composite-trades")
    rows = []
    for t in _threats_for(recs, [era_id, tr_id], ["composite"]):
        cid = _cid("era-branch-vs-trades", t)
        setting = f"digits {t}, {era_id} vs {tr_id}, same selector and adaptive attack"
        e, r = recs.get(era_id, "composite", t), recs.get(tr_id, "composite", t)
        if e is None or r is None:
            rows.append(_row(cid, ERA, claim, paper_setting, paper_value, source, setting,
                             reason=f"no composite record of {era_id if e is None else tr_id} at {t}"))
            continue
        e, r = _aligned(e, r)
        a, b = _col(e, "robust_accurate"), _col(r, "robust_accurate")
        est, ci, pv = _paired_difference(a, b, opts)
        verdict = decide(est, ci, +1, pv)
        rows.append(_row(cid, ERA, claim, paper_setting, paper_value, source, setting,
                         f"{_pct(b.mean())} (TRADES branch) vs {_pct(a.mean())} (ERA branch), {_pts(est)}; robust "
                         f"inaccuracy {_pct(_col(r, 'robust_inaccurate').mean())} vs "
                         f"{_pct(_col(e, 'robust_inaccurate').mean())}", _pts_interval(ci), verdict,
                         _significance_reason(verdict, pv, ci)))
    return rows


# ------------------------------------------------------------- certified probabilistic robustness (Zhang)


def _prob(recs: Records, classifier: str, t: str, opts: ClaimOptions) -> tuple[pd.DataFrame | None, str]:
    for test in opts.prob_tests:
        frame = recs.get(classifier, f"certify-prob-{test}", t)
        if frame is not None:
            return frame, test
    return None, opts.prob_tests[0]


def claim_prob_variance(recs: Records, summary: pd.DataFrame | None, opts: ClaimOptions) -> list[dict]:
    claim = ("Variance-minimizing training raises the (ε, κ) certified robust accuracy over standard training "
             "at equal clean accuracy")
    paper_setting = "MNIST / SVHN / CIFAR, ℓ∞, κ = 0.01"
    paper_value = "83.36% certified robust accuracy on average"
    source = "Zhang et al. 2023, abstract (unverified against the paper)"
    rows = []
    for t in _threats_for(recs, [opts.prob_trained, opts.standard], [f"certify-prob-{x}" for x in opts.prob_tests]):
        cid = _cid("prob-variance-vs-standard", t)
        v, test = _prob(recs, opts.prob_trained, t, opts)
        s, _ = _prob(recs, opts.standard, t, opts)
        setting = f"digits {t}, {opts.prob_trained} vs {opts.standard}, {test} test, certified and correct"
        if v is None or s is None:
            rows.append(_row(cid, ZHANG, claim, paper_setting, paper_value, source, setting,
                             reason=f"no probabilistic certification record of "
                                    f"{opts.prob_trained if v is None else opts.standard} at {t}"))
            continue
        v, s = _aligned(v, s)

        def certified(f: pd.DataFrame) -> np.ndarray:
            return ((f["outcome"].astype(str) == "robust") & (f["reference"] == f["label"])).to_numpy(np.float64)

        def clean(f: pd.DataFrame) -> np.ndarray:
            return (f["reference"] == f["label"]).to_numpy(np.float64)

        est, ci, pv = _paired_difference(certified(v), certified(s), opts)
        dc, dc_ci, _ = _paired_difference(clean(v), clean(s), opts)
        verdict = decide(est, ci, +1, pv)
        reason = _significance_reason(verdict, pv, ci)
        if dc_ci[1] < -opts.clean_tolerance:
            verdict, reason = NOT_REPRODUCED, "the variance model's clean accuracy is significantly lower"
        rows.append(_row(cid, ZHANG, claim, paper_setting, paper_value, source, setting,
                         f"{_pct(certified(s).mean())} → {_pct(certified(v).mean())} ({_pts(est)}); clean "
                         f"{_pts(dc)} {_pts_interval(dc_ci)}; n = {len(v)}", _pts_interval(ci), verdict, reason))
    return rows


def claim_prob_sequential_samples(recs: Records, summary: pd.DataFrame | None, opts: ClaimOptions) -> list[dict]:
    claim = "The sequential test decides with fewer samples than the fixed-n test at the same error level"
    paper_setting = "sequential exact binomial tests (Algorithm 2)"
    paper_value = "certification in seconds rather than hours (Table 4, qualitative)"
    source = "Zhang et al. 2023, Algorithm 2 and Table 4 (per the OpenReview reviews)"
    seq_used, fix_used, agree, names = [], [], [], []
    for t in recs.threats():
        for c in sorted({c for c, e, tt in recs.keys() if e == "certify-prob-sequential" and tt == t}):
            s, f = recs.get(c, "certify-prob-sequential", t), recs.get(c, "certify-prob-fixed", t)
            if s is None or f is None:
                continue
            s, f = _aligned(s, f)
            seq_used.append(_col(s, "samples"))
            fix_used.append(_col(f, "samples"))
            agree.append((s["outcome"].astype(str) == f["outcome"].astype(str)).to_numpy())
            names.append(f"{c}@{t}")
    setting = "digits, every classifier with both tests' records, α per point as configured"
    if not names:
        return [_row("prob-sequential-fewer-samples", ZHANG, claim, paper_setting, paper_value, source, setting,
                     reason="no classifier has both certify-prob-sequential and certify-prob-fixed records")]
    n = min(len(x) for x in seq_used)
    saved = np.stack([f[:n] - s[:n] for s, f in zip(seq_used, fix_used, strict=True)], axis=1).mean(axis=1)
    ratio = float(np.mean(np.concatenate(seq_used)) / np.mean(np.concatenate(fix_used)))
    est = float(saved.mean())
    ci = bootstrap_interval(lambda idx: saved[idx].mean(axis=1), n, opts.seed, opts.resamples, opts.confidence)
    verdict = decide(est, ci, +1)
    return [_row("prob-sequential-fewer-samples", ZHANG, claim, paper_setting, paper_value, source,
                 setting + f" ({', '.join(names)})",
                 f"{est:.0f} fewer samples per point on average (sequential/fixed = {ratio:.2f}); decisions agree on "
                 f"{_pct(float(np.mean(np.concatenate(agree))))} of points", f"[{ci[0]:.0f}, {ci[1]:.0f}] samples",
                 verdict, _significance_reason(verdict) + " (bootstrap over the test points)")]


def _simulated_rate(rule: Any, p: float, runs: int, rng: np.random.Generator, chunk: int = 2000) -> float:
    """Fraction of ``runs`` i.i.d. Bernoulli(p) streams that a look-based rule certifies (vectorised, chunked)."""
    looks = np.asarray(rule.looks)
    k_rob, k_not = rule.critical_counts()
    steps = np.diff(np.concatenate([[0], looks]))
    certified = 0
    for start in range(0, runs, chunk):
        m = min(chunk, runs - start)
        k = np.cumsum(rng.binomial(steps, p, size=(m, len(looks))), axis=1)
        robust, decided = k >= k_rob, (k >= k_rob) | (k <= k_not)
        first = np.where(decided.any(axis=1), decided.argmax(axis=1), len(looks) - 1)
        certified += int(robust[np.arange(m), first].sum())
    return certified / runs


def claim_prob_naive_test(recs: Records, summary: pd.DataFrame | None, opts: ClaimOptions) -> list[dict]:
    from .probabilistic.sequential import NaiveSequentialTest, SequentialTest

    claim = ("The paper's sequential test (an exact test at level α after every sample) certifies falsely far more "
             "often than α; the group-sequential test with α-spending does not")
    paper_setting = "sequential exact binomial tests at level α, stop at the first rejection"
    paper_value = "error ≤ α claimed (Theorem B.2, no proof)"
    source = "Zhang et al. 2023, Algorithm 2 and Theorem B.2 (per the OpenReview reviews)"
    step = opts.naive_step
    setting = (f"simulation: {opts.simulations} inputs at the boundary p = 1 − κ, κ = {opts.kappa:g}, "
               f"α = {opts.alpha:g}, n_max = {opts.n_max}, naive look every {step} samples")
    try:
        ours = SequentialTest(opts.kappa, opts.alpha, opts.n_max, opts.growth, opts.first_look_share)
        naive = NaiveSequentialTest(opts.kappa, opts.alpha, opts.n_max, step=step)
    except ValueError as exc:
        return [_row("prob-naive-test", ZHANG, claim, paper_setting, paper_value, source, setting, reason=str(exc))]
    rng = np.random.default_rng(opts.seed)
    naive_rate = _simulated_rate(naive, 1 - opts.kappa, opts.simulations, rng)
    our_rate = _simulated_rate(ours, 1 - opts.kappa, opts.simulations, rng)
    k_naive, k_ours = round(naive_rate * opts.simulations), round(our_rate * opts.simulations)
    lo, hi = proportion_interval(k_naive, opts.simulations, opts.confidence)
    our_lo, our_hi = proportion_interval(k_ours, opts.simulations, opts.confidence)
    inflated, ours_ok = lo > opts.alpha, our_lo <= opts.alpha
    verdict = REPRODUCED if inflated and ours_ok else (SAME if naive_rate > opts.alpha and ours_ok
                                                      else NOT_REPRODUCED)
    return [_row("prob-naive-test", ZHANG, claim, paper_setting, paper_value, source, setting,
                 f"false certifications: per-look test {_pct(naive_rate)}, ours {_pct(our_rate)} "
                 f"[{_pct(our_lo)}, {_pct(our_hi)}] (α = {_pct(opts.alpha)})", f"[{_pct(lo)}, {_pct(hi)}]", verdict,
                 ("the per-look test's exact interval lies above α; ours is not above α" if verdict == REPRODUCED
                  else "the per-look test's rate is not significantly above α, or ours is"))]


# ------------------------------------------------------------------------------- randomized smoothing


def _certified(frame: pd.DataFrame, radius: float) -> np.ndarray:
    return ((frame["prediction"].to_numpy() == frame["label"].to_numpy())
            & (frame["prediction"].to_numpy() >= 0) & (_col(frame, "radius") >= radius)).astype(np.float64)


def _sigma(name: str) -> float:
    match = re.search(r"(\d+(?:\.\d*)?)$", name)
    return float(match.group(1)) if match else math.nan


def claim_rs(recs: Records, summary: pd.DataFrame | None, opts: ClaimOptions) -> list[dict]:
    source = "Cohen et al. 2019, official code README (CIFAR-10, ResNet-110)"
    rows = []
    smoothed = sorted({c for c, e, _ in recs.keys() if e == "certify-rs"}, key=_sigma)
    frames = {c: recs.get(c, "certify-rs", "none") for c in smoothed}
    frames = {c: f for c, f in frames.items() if f is not None}
    r_max = opts.rs_radius
    claim = "Certified accuracy falls as the certified radius grows"
    if not frames:
        rows.append(_row("rs-falls-with-radius", COHEN, claim, "CIFAR-10, σ = 0.25",
                         "77% at r = 0 → 24% at r = 0.75", source, "digits, Gaussian-augmented models",
                         reason="no certify-rs records (the certification stage is off?)"))
    for c, frame in frames.items():
        a, b = _certified(frame, 0.0), _certified(frame, r_max)
        est, ci, pv = _paired_difference(a, b, opts)
        verdict = decide(est, ci, +1, pv)
        rows.append(_row(f"rs-falls-with-radius-{c}", COHEN, claim, "CIFAR-10, σ = 0.25",
                         "77% at r = 0 → 24% at r = 0.75", source, f"digits, {c}, r = 0 vs r = {r_max:g}",
                         f"{_pct(a.mean())} → {_pct(b.mean())}", _pts_interval((-ci[1], -ci[0])), verdict,
                         _significance_reason(verdict, pv, ci)))
    claim = "A larger σ trades clean accuracy for certified accuracy at large radii"
    paper_value = "σ 0.25 → 0.5: 77% → 66% at r = 0, 24% → 31% at r = 0.75"
    if len(frames) < 2:
        rows.append(_row("rs-sigma-tradeoff", COHEN, claim, "CIFAR-10, σ ∈ {0.25, 0.5}", paper_value, source,
                         "digits", reason=f"needs certify-rs records at ≥ 2 noise levels σ, found {len(frames)}"))
        return rows
    small, large = list(frames)[0], list(frames)[-1]
    fs, fl = _aligned(frames[small], frames[large])
    clean, clean_ci, clean_p = _paired_difference(_certified(fs, 0.0), _certified(fl, 0.0), opts)
    far, far_ci, far_p = _paired_difference(_certified(fl, r_max), _certified(fs, r_max), opts)
    v1, v2 = decide(clean, clean_ci, +1, clean_p), decide(far, far_ci, +1, far_p)
    verdict = (REPRODUCED if v1 == v2 == REPRODUCED else NOT_REPRODUCED if NOT_REPRODUCED in (v1, v2) else SAME)
    rows.append(_row("rs-sigma-tradeoff", COHEN, claim, "CIFAR-10, σ ∈ {0.25, 0.5}", paper_value, source,
                     f"digits, {small} vs {large}, r = 0 and r = {r_max:g}",
                     f"r = 0: {_pts(-clean)} with the larger σ; r = {r_max:g}: {_pts(far)}",
                     f"r = 0: {_pts_interval((-clean_ci[1], -clean_ci[0]))}; r = {r_max:g}: {_pts_interval(far_ci)}",
                     verdict, f"clean cost: {v1}; gain at r = {r_max:g}: {v2}"))
    return rows


# ---------------------------------------------------------------------------------------------- driver

CLAIMS: tuple[Callable[[Records, pd.DataFrame | None, ClaimOptions], list[dict]], ...] = (
    claim_tsipras_at_lowers_accuracy, claim_tsipras_eps_trend, claim_tsipras_synthetic, claim_tsipras_closed_forms,
    claim_tsipras_theorem, claim_mixing_above_chord, claim_mixing_prob_vs_logit, claim_mixing_confidence_gap,
    claim_mixing_certified_radii, claim_mixnet_vs_fixed, claim_era_robust_inaccuracy, claim_era_composite_gain,
    claim_era_branch, claim_prob_variance, claim_prob_sequential_samples, claim_prob_naive_test, claim_rs,
)
"""Every claim function, in the order of the table."""


def evaluate_claims(records: RecordMap, summary: pd.DataFrame | None = None,
                    options: ClaimOptions | None = None) -> list[dict[str, str]]:
    """Every claim's rows (columns :data:`CLAIM_COLUMNS`) from the records and the summary frame.

    Guarantee: never raises on missing or unreadable inputs -- a claim whose records are absent, or whose
    computation fails, yields a ``not testable`` row with the reason -- and the result depends only on the
    inputs and ``options.seed``.
    """
    opts = options or ClaimOptions()
    recs = Records(records)
    rows: list[dict[str, str]] = []
    for fn in CLAIMS:
        try:
            rows.extend(fn(recs, summary, opts))
        except Exception as exc:  # noqa: BLE001 -- one malformed record must not hide every other claim
            name = fn.__name__.removeprefix("claim_").replace("_", "-")
            rows.append(_row(name, "", name, "", "", "", "", reason=f"could not be evaluated: {exc!r}"))
    return rows


def claims_frame(rows: Sequence[Mapping[str, str]]) -> pd.DataFrame:
    """The rows as a frame with the columns of ``results/claims.csv``."""
    return pd.DataFrame(list(rows), columns=CLAIM_COLUMNS)


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_markdown(rows: Sequence[Mapping[str, str]]) -> str:
    """``results/claims.md``: a count of the verdicts, then one table per paper."""
    counts = {v: sum(r["verdict"] == v for r in rows) for v in VERDICTS}
    lines = ["## Claims", "",
             "Each paper's claim, its number and ours with a 95% interval (exact binomial for one accuracy; paired "
             "bootstrap over the same test points, plus an exact McNemar test for 0/1 outcomes, for a "
             "difference) and the verdict that follows from the records.", "",
             "Verdicts: " + ", ".join(f"{counts[v]} {v}" for v in VERDICTS) + ".", ""]
    for paper in dict.fromkeys(r["paper"] for r in rows):
        lines += [f"### {paper or 'other'}", "",
                  "| claim | paper (setting: value) | source | ours (setting: value) | 95% interval | verdict "
                  "| reason |",
                  "|---|---|---|---|---|---|---|"]
        for r in rows:
            if r["paper"] == paper:
                lines.append("| " + " | ".join(_cell(x) for x in (
                    r["claim"], f"{r['paper_setting']}: {r['paper_value']}", r["source"],
                    f"{r['our_setting']}: {r['our_value']}", r["interval"], f"**{r['verdict']}**", r["reason"])) + " |")
        lines.append("")
    return "\n".join(lines)
