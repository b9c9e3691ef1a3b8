"""Tsipras et al. 2019, "Robustness may be at odds with accuracy": the claims and our checks of them."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .common import Context, means
from .records import aligned, cid, clean_correct, col, pct, seeds_note, threat_eps
from .stats import Evidence, proportion_interval
from .table import OWN, Row

PAPER = "Tsipras et al. 2019"
FIG1 = "Tsipras et al. 2019, Sec. 2, Figure 1: standard accuracy of models trained at growing ε"


def at_lowers_accuracy(ctx: Context) -> list[Row]:
    """Adversarial training lowers standard accuracy: standard − adversarially trained clean accuracy > 0."""
    o, rows = ctx.opts, []
    prefs = (*o.robust_evaluations, "clean")
    for model in o.robust_models:
        for t in ctx.recs.threats_for([model], o.robust_evaluations):
            def load(seed: int, model=model, t=t):
                s, r = ctx.recs.robust(o.standard, t, prefs, seed)[0], ctx.recs.robust(model, t, prefs, seed)[0]
                return None if s is None or r is None else tuple(clean_correct(f) for f in aligned(s, r))

            ev, pairs = ctx.compare(load)
            seeds = seeds_note(list(pairs))
            value = "–" if ev is None else (f"{pct(means(pairs)[0])} → {pct(means(pairs)[1])} "
                                            f"(n = {len(next(iter(pairs.values()))[0])} paired points)")
            rows.append(Row(cid(f"tsipras-at-lowers-accuracy-{model}", t), PAPER,
                            "Adversarial training lowers standard accuracy",
                            "MNIST, CIFAR-10, Restricted ImageNet; adversarial vs standard training",
                            "standard accuracy lower after adversarial training (read off the figure)", FIG1,
                            f"{ctx.dataset}, {o.standard} → {model} trained at {t}, clean accuracy{seeds}", value, ev,
                            "" if ev else ctx.recs.why(o.standard if ctx.recs.robust(o.standard, t, prefs)[0] is None
                                                       else model, o.robust_evaluations, t)))
    return rows


def eps_trend(ctx: Context) -> list[Row]:
    """The standard accuracy lost to adversarial training grows with the training ε (smallest vs largest)."""
    o, rows = ctx.opts, []
    for model in o.robust_models:
        threats = [t for t in ctx.recs.threats() if ctx.recs.robust(model, t, o.robust_evaluations)[0] is not None]
        lo_t, hi_t = (threats[0], threats[-1]) if len(threats) >= 2 else ("", "")

        def load(seed: int, model=model, lo_t=lo_t, hi_t=hi_t):
            a = ctx.recs.robust(model, lo_t, o.robust_evaluations, seed)[0]
            b = ctx.recs.robust(model, hi_t, o.robust_evaluations, seed)[0]
            return None if a is None or b is None else tuple(clean_correct(f) for f in aligned(a, b))

        ev, pairs = ctx.compare(load) if lo_t else (None, {})
        value = "–" if ev is None else f"{pct(means(pairs)[0])} at {lo_t} → {pct(means(pairs)[1])} at {hi_t}"
        rows.append(Row(f"tsipras-eps-trend-{model}", PAPER,
                        "The standard accuracy lost to adversarial training grows with the training ε",
                        "MNIST, CIFAR-10, Restricted ImageNet; training ε growing",
                        "standard accuracy falls as ε grows (on MNIST a small ε can even help)", FIG1,
                        f"{ctx.dataset}, clean accuracy of {model} trained at the smallest vs the largest ε"
                        + (f" ({lo_t} vs {hi_t})" if lo_t else "") + seeds_note(list(pairs)), value, ev,
                        "" if ev else f"{model} has records at {len(threats)} threat budget(s); the trend needs "
                                      "at least 2"))
    return rows


def _theory(summary: pd.DataFrame | None, classifier: str, eps: float) -> float | None:
    """The closed-form accuracy of ``classifier`` at ``eps`` (0: standard; inf: the one positive ε present)."""
    if summary is None or summary.empty:
        return None
    sel = summary[(summary["classifier"] == classifier) & (summary["evaluation"] == "theory")
                  & (summary["metric"] == "accuracy")]
    values = sel["eps"].astype(float)
    sel = sel[values > 0] if math.isinf(eps) else sel[np.isclose(values, eps, rtol=1e-9, atol=1e-12)]
    return float(sel["value"].iloc[0]) if len(sel) else None


def _bound_ratio(summary: pd.DataFrame | None) -> float | None:
    """p / (1 − p) from the summary's theory rows: robust_bound = p/(1−p) · (1 − standard accuracy)."""
    if summary is None or summary.empty:
        return None
    theory = summary[(summary["evaluation"] == "theory") & summary["classifier"].str.startswith("tsipras-")]
    for name in sorted(set(theory["classifier"])):
        bound = theory[(theory["classifier"] == name) & (theory["metric"] == "robust_bound")]
        std = _theory(summary, name, 0.0)
        if len(bound) and std is not None and std < 1 - 1e-9:
            return float(bound["value"].iloc[0]) / (1 - std)
    return None


def _exact(ctx: Context, name: str) -> tuple[str, pd.DataFrame] | None:
    """The exact record of a linear model at the largest threat where it has one."""
    for t in reversed(ctx.recs.threats()):
        frame = ctx.recs.get(name, "exact", t)
        if frame is not None:
            return t, frame
    return None


THEOREM_22 = "Tsipras et al. 2019, Theorem 2.2"
SETTING_22 = "their distribution, η ≥ 4/√d, p ≤ 0.975, ε ≥ 2η"


def synthetic_at(ctx: Context) -> list[Row]:
    """Theorem 2.2: standard training > 99% standard accuracy; adversarial training → sign(x1), accuracy p."""
    s, r = _exact(ctx, "tsipras-standard"), _exact(ctx, "tsipras-adversarial")
    ratio = _bound_ratio(ctx.summary)
    p = ratio / (1 + ratio) if ratio else None
    row = Row("tsipras-synthetic-at", PAPER,
              "On their distribution, adversarial training trades standard accuracy for robustness",
              SETTING_22, "standard training > 99% standard accuracy; adversarial training → sign(x1), accuracy p"
              + (f" = {pct(p)}" if p else ""), THEOREM_22,
              "trained linear models tsipras-standard → tsipras-adversarial, clean accuracy",
              paper_effect=(0.99 - p) if p else None, note="a lower bound of the paper's effect (> 99% − p)")
    if s is None or r is None:
        row.note = "no exact records of tsipras-standard and tsipras-adversarial"
        return [row]
    fs, fr = aligned(s[1], r[1])
    a, b = col(fs, "clean_correct"), col(fr, "clean_correct")
    row.evidence, _ = ctx.compare(lambda seed: (a, b) if seed == ctx.recs.seeds()[0] else None)
    row.our_setting += f" ({r[0]})"
    row.our_value = (f"{pct(a.mean())} → {pct(b.mean())}; robust {pct(col(fs, 'correct').mean())} → "
                     f"{pct(col(fr, 'correct').mean())}")
    return [row]


def _rate_below(k: int, n: int, bound: float, confidence: float) -> Evidence:
    """Slack ``bound − k/n`` of a claimed upper bound on a rate, its exact interval, the one-sided p-value."""
    from scipy import stats

    lo, hi = proportion_interval(k, n, confidence)
    p = float(stats.binomtest(k, n, bound, alternative="greater").pvalue)
    return Evidence(bound - k / n, (bound - hi, bound - lo), p, 0.0, (bound - k / n,), "exact binomial, one-sided")


def standard_below_one_percent(ctx: Context) -> list[Row]:
    """Theorem 2.2: the standard linear model has < 1% adversarial accuracy at ε ≥ 2η."""
    s = _exact(ctx, "tsipras-standard")
    row = Row("tsipras-standard-adversarial-accuracy", PAPER,
              "The standardly trained classifier has below 1% adversarial accuracy at ε ≥ 2η", SETTING_22,
              "< 1% adversarial accuracy", THEOREM_22, "trained linear model tsipras-standard, exact worst case",
              kind="bound", unit="points")
    if s is None:
        row.note = "no exact record of tsipras-standard"
        return [row]
    x = col(s[1], "correct")
    row.evidence = _rate_below(int(x.sum()), len(x), 0.01, ctx.opts.confidence)
    row.our_setting += f" at {s[0]}"
    row.our_value = f"{pct(x.mean())} adversarial accuracy (n = {len(x)}); slack to 1%"
    return [row]


def theorem_21(ctx: Context) -> list[Row]:
    """Theorem 2.1: robust accuracy ≤ p/(1−p) · (1 − standard accuracy) at ε ≥ 2η, for every linear model."""
    row = Row("tsipras-theorem-2.1", PAPER, "Theorem 2.1: robust accuracy ≤ p/(1−p) · (1 − standard accuracy) "
              "at ε ≥ 2η", "their distribution, any classifier, ℓ∞ ε ≥ 2η",
              "p = 0.95 and 99% standard accuracy give ≤ 19% robust accuracy", "Tsipras et al. 2019, Theorem 2.1",
              "every linear model's exact record: p/(1−p)·(1 − clean) − robust on the same points", kind="bound")
    ratio = _bound_ratio(ctx.summary)
    if ratio is None:
        row.note = "no theory rows (robust_bound) in the summary to read p from"
        return [row]
    found = []
    for name in ctx.recs.classifiers(r"tsipras-.+"):
        rec = _exact(ctx, name)
        if rec is None:
            continue
        c, r = col(rec[1], "clean_correct"), col(rec[1], "correct")
        ev = ctx.bootstrap([lambda idx, c=c, r=r: ratio * (1 - c[idx].mean(1)) - r[idx].mean(1)], len(c))
        found.append((ev, name))
    if not found:
        row.note = "no exact records of tsipras-* models"
        return [row]
    ev, name = min(found, key=lambda x: x[0].estimate)
    row.evidence = Evidence(ev.estimate, ev.interval, min(1.0, ev.pvalue * len(found)), 0.0, ev.seeds,
                            f"bootstrap, smallest slack of {len(found)} models, Bonferroni")
    row.our_value = f"smallest slack {100 * ev.estimate:+.1f} points ({name}, p/(1−p) = {ratio:.3g})"
    return [row]


def closed_forms(ctx: Context) -> list[Row]:
    """Our check: the linear models' exact records match the closed forms derived from the paper's model."""
    from scipy import stats

    row = Row("tsipras-closed-forms", PAPER, "The linear models' standard and robust accuracies equal the closed "
              "forms of the paper's distribution", "their distribution (y, x1 = ±y w.p. p, x_i ~ N(ηy, 1))",
              "closed forms Φ(η√d), Φ((η − ε)√d), p, … derived from the model",
              "Tsipras et al. 2019, Sec. 2.1 (the distribution); the closed forms are ours",
              "every linear model's exact record vs its closed form in the summary", kind="equal", section=OWN)
    checks = []
    for name in ctx.recs.classifiers(r"tsipras-.+"):
        rec = _exact(ctx, name)
        if rec is None:
            continue
        for column, eps in (("clean_correct", 0.0), ("correct", threat_eps(rec[0]))):
            value = _theory(ctx.summary, name, eps)
            if value is not None:
                x = col(rec[1], column)
                checks.append((name, "standard" if eps == 0 else f"robust at {rec[0]}", value, int(x.sum()), len(x)))
    if not checks:
        row.note = "no exact records of tsipras-* models with theory rows in the summary"
        return [row]
    pvals = [float(stats.binomtest(k, n, min(max(v, 1e-12), 1 - 1e-12)).pvalue) for _, _, v, k, n in checks]
    worst = int(np.argmin(pvals))
    name, kind, value, k, n = checks[worst]
    level = 1 - (1 - ctx.opts.confidence) / len(checks)
    lo, hi = proportion_interval(k, n, level)
    row.evidence = Evidence(k / n - value, (lo - value, hi - value), min(1.0, pvals[worst] * len(checks)), 0.0,
                            (k / n - value,), f"exact binomial, Bonferroni over {len(checks)} closed forms")
    row.our_value = (f"{len(checks)} closed forms; least fitting {name} {kind}: {pct(k / n)} vs {pct(value)} "
                     f"(interval at {100 * level:.2f}%)")
    return [row]


CLAIMS = (at_lowers_accuracy, eps_trend, synthetic_at, standard_below_one_percent, theorem_21, closed_forms)
