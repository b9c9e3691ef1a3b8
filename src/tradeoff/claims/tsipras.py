"""Tsipras et al. 2019, "Robustness may be at odds with accuracy": the claims and our checks of them."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .common import Context, means
from .records import aligned, cid, clean_correct, col, pct, seeds_note, threat_eps
from .stats import Evidence, PointStatistic, proportion_interval
from .table import OWN, Row

PAPER = "Tsipras et al. 2019"
FIG1 = "Tsipras et al. 2019, Sec. 2, Figure 1: standard accuracy of models trained at growing ε"


def _has_robust(ctx: Context, classifier: str, threat: str, evaluations: tuple[str, ...]) -> bool:
    """Whether ``classifier`` has a record of one of ``evaluations`` at ``threat`` for some training seed."""
    return any(ctx.recs.robust(classifier, threat, evaluations, s)[0] is not None for s in ctx.recs.seeds())


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
                            "" if ev else ctx.recs.why(model if _has_robust(ctx, o.standard, t, prefs)
                                                       else o.standard, o.robust_evaluations, t)))
    return rows


def eps_trend(ctx: Context) -> list[Row]:
    """The standard accuracy lost to adversarial training grows with the training ε (smallest vs largest)."""
    o, rows = ctx.opts, []
    for model in o.robust_models:
        threats = [t for t in ctx.recs.threats() if _has_robust(ctx, model, t, o.robust_evaluations)]
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


def _theory_rows(summary: pd.DataFrame | None, seed: int) -> pd.DataFrame | None:
    """The summary's closed-form rows of training seed ``seed`` (a summary without a ``seed`` column is seed 0's)."""
    if summary is None or summary.empty:
        return None
    theory = summary[summary["evaluation"] == "theory"]
    if "seed" in theory:
        return theory[theory["seed"].astype(int) == seed]
    return theory if seed == 0 else theory.iloc[:0]


def _theory(summary: pd.DataFrame | None, classifier: str, eps: float, seed: int = 0) -> float | None:
    """The closed-form accuracy of ``classifier`` (seed ``seed``) at ``eps`` (0: standard; inf: the positive ε)."""
    theory = _theory_rows(summary, seed)
    if theory is None:
        return None
    sel = theory[(theory["classifier"] == classifier) & (theory["metric"] == "accuracy")]
    values = sel["eps"].astype(float)
    sel = sel[values > 0] if math.isinf(eps) else sel[np.isclose(values, eps, rtol=1e-9, atol=1e-12)]
    return float(sel["value"].iloc[0]) if len(sel) else None


def _bound_ratio(summary: pd.DataFrame | None, seed: int = 0) -> float | None:
    """p / (1 − p) from seed ``seed``'s theory rows: robust_bound = p/(1−p) · (1 − standard accuracy)."""
    theory = _theory_rows(summary, seed)
    if theory is None:
        return None
    theory = theory[theory["classifier"].str.startswith("tsipras-")]
    for name in sorted(set(theory["classifier"])):
        bound = theory[(theory["classifier"] == name) & (theory["metric"] == "robust_bound")]
        std = _theory(summary, name, 0.0, seed)
        if len(bound) and std is not None and std < 1 - 1e-9:
            return float(bound["value"].iloc[0]) / (1 - std)
    return None


def _ratios(ctx: Context) -> dict[int, float]:
    """{seed: p / (1 − p)} over the training seeds whose theory rows give it."""
    return ctx.recs.per_seed(lambda seed: _bound_ratio(ctx.summary, seed))


def _exact(ctx: Context, name: str, seed: int = 0) -> tuple[str, pd.DataFrame] | None:
    """The exact record of a linear model (seed ``seed``) at the largest threat where it has one."""
    for t in reversed(ctx.recs.threats()):
        frame = ctx.recs.get(name, "exact", t, seed)
        if frame is not None:
            return t, frame
    return None


def _exacts(ctx: Context, name: str) -> dict[int, tuple[str, pd.DataFrame]]:
    """{seed: (threat, exact record)} of a linear model over the training seeds where it has one."""
    return ctx.recs.per_seed(lambda seed: _exact(ctx, name, seed))


THEOREM_22 = "Tsipras et al. 2019, Theorem 2.2"
SETTING_22 = "their distribution, η ≥ 4/√d, p ≤ 0.975, ε ≥ 2η"


def synthetic_at(ctx: Context) -> list[Row]:
    """Theorem 2.2: standard training > 99% standard accuracy; adversarial training → sign(x1), accuracy p."""
    ratio = next(iter(_ratios(ctx).values()), None)
    p = ratio / (1 + ratio) if ratio else None
    row = Row("tsipras-synthetic-at", PAPER,
              "On their distribution, adversarial training trades standard accuracy for robustness",
              SETTING_22, "standard training > 99% standard accuracy; adversarial training → sign(x1), accuracy p"
              + (f" = {pct(p)}" if p else ""), THEOREM_22,
              "trained linear models tsipras-standard → tsipras-adversarial, clean accuracy",
              paper_effect=(0.99 - p) if p else None, note="a lower bound of the paper's effect (> 99% − p)")

    def load(seed: int) -> tuple[str, list[pd.DataFrame]] | None:
        s, r = _exact(ctx, "tsipras-standard", seed), _exact(ctx, "tsipras-adversarial", seed)
        return None if s is None or r is None else (r[0], aligned(s[1], r[1]))

    found = ctx.recs.per_seed(load)
    if not found:
        row.note = "no exact records of tsipras-standard and tsipras-adversarial"
        return [row]
    row.evidence, pairs = ctx.compare(lambda seed: tuple(col(f, "clean_correct") for f in found[seed][1])
                                      if seed in found else None)
    robust = {seed: tuple(col(f, "correct") for f in frames) for seed, (_, frames) in found.items()}
    row.our_setting += f" ({', '.join(dict.fromkeys(t for t, _ in found.values()))}){seeds_note(list(found))}"
    row.our_value = (f"{pct(means(pairs)[0])} → {pct(means(pairs)[1])}; robust {pct(means(robust)[0])} → "
                     f"{pct(means(robust)[1])}")
    return [row]


def _rate_below(k: int, n: int, bound: float, confidence: float) -> Evidence:
    """Slack ``bound − k/n`` of a claimed upper bound on a rate, its exact interval, the one-sided p-value."""
    from scipy import stats

    lo, hi = proportion_interval(k, n, confidence)
    p = float(stats.binomtest(k, n, bound, alternative="greater").pvalue)
    return Evidence(bound - k / n, (bound - hi, bound - lo), p, 0.0, (bound - k / n,), "exact binomial, one-sided")


def standard_below_one_percent(ctx: Context) -> list[Row]:
    """Theorem 2.2: the standard linear model has < 1% adversarial accuracy at ε ≥ 2η."""
    found = _exacts(ctx, "tsipras-standard")
    row = Row("tsipras-standard-adversarial-accuracy", PAPER,
              "The standardly trained classifier has below 1% adversarial accuracy at ε ≥ 2η", SETTING_22,
              "< 1% adversarial accuracy", THEOREM_22, "trained linear model tsipras-standard, exact worst case",
              kind="bound", unit="points")
    if not found:
        row.note = "no exact record of tsipras-standard"
        return [row]
    xs = [col(f, "correct") for _, f in found.values()]
    if len(xs) == 1:  # one seed: the exact binomial test of the rate
        row.evidence = _rate_below(int(xs[0].sum()), len(xs[0]), 0.01, ctx.opts.confidence)
    else:
        row.evidence = ctx.bootstrap([lambda idx, x=x: 0.01 - x[idx].mean(axis=1) for x in xs], min(map(len, xs)))
    row.our_setting += f" at {', '.join(dict.fromkeys(t for t, _ in found.values()))}{seeds_note(list(found))}"
    row.our_value = (f"{pct(float(np.mean([x.mean() for x in xs])))} adversarial accuracy (n = {len(xs[0])}); "
                     "slack to 1%")
    return [row]


def _slack_21(ratio: float, frame: pd.DataFrame) -> PointStatistic:
    """Statistic: Theorem 2.1's slack p/(1−p) · (1 − standard accuracy) − robust accuracy of one exact record."""
    c, r = col(frame, "clean_correct"), col(frame, "correct")
    return lambda idx: ratio * (1 - c[idx].mean(1)) - r[idx].mean(1)


def theorem_21(ctx: Context) -> list[Row]:
    """Theorem 2.1: robust accuracy ≤ p/(1−p) · (1 − standard accuracy) at ε ≥ 2η, for every linear model."""
    row = Row("tsipras-theorem-2.1", PAPER, "Theorem 2.1: robust accuracy ≤ p/(1−p) · (1 − standard accuracy) "
              "at ε ≥ 2η", "their distribution, any classifier, ℓ∞ ε ≥ 2η",
              "p = 0.95 and 99% standard accuracy give ≤ 19% robust accuracy", "Tsipras et al. 2019, Theorem 2.1",
              "every linear model's exact record: p/(1−p)·(1 − clean) − robust on the same points", kind="bound")
    ratios = _ratios(ctx)
    if not ratios:
        row.note = "no theory rows (robust_bound) in the summary to read p from"
        return [row]
    found, seeds = [], set()
    for name in ctx.recs.classifiers(r"tsipras-.+"):
        exact = {seed: f for seed, (_, f) in _exacts(ctx, name).items() if seed in ratios}
        if not exact:
            continue
        seeds |= set(exact)
        stats = [_slack_21(ratios[seed], f) for seed, f in exact.items()]
        found.append((ctx.bootstrap(stats, min(map(len, exact.values()))), name))
    if not found:
        row.note = "no exact records of tsipras-* models"
        return [row]
    ev, name = min(found, key=lambda x: x[0].estimate)
    row.evidence = Evidence(ev.estimate, ev.interval, min(1.0, ev.pvalue * len(found)), 0.0, ev.seeds,
                            f"bootstrap, smallest slack of {len(found)} models, Bonferroni")
    row.our_setting += seeds_note(sorted(seeds))
    ratio = ", ".join(dict.fromkeys(f"{k:.3g}" for k in ratios.values()))
    row.our_value = f"smallest slack {100 * ev.estimate:+.1f} points ({name}, p/(1−p) = {ratio})"
    return [row]


def closed_forms(ctx: Context) -> list[Row]:
    """Our check: the linear models' exact records match the closed forms derived from the paper's model."""
    from scipy import stats

    row = Row("tsipras-closed-forms", PAPER, "The linear models' standard and robust accuracies equal the closed "
              "forms of the paper's distribution", "their distribution (y, x1 = ±y w.p. p, x_i ~ N(ηy, 1))",
              "closed forms Φ(η√d), Φ((η − ε)√d), p, … derived from the model",
              "Tsipras et al. 2019, Sec. 2.1 (the distribution); the closed forms are ours",
              "every linear model's exact record vs its closed form in the summary", kind="equal", section=OWN)
    checks = []  # (classifier, which accuracy, seed, closed form, points right, points)
    for name in ctx.recs.classifiers(r"tsipras-.+"):
        for seed, (t, frame) in _exacts(ctx, name).items():
            for column, eps in (("clean_correct", 0.0), ("correct", threat_eps(t))):
                value = _theory(ctx.summary, name, eps, seed)
                if value is not None:
                    x = col(frame, column)
                    checks.append((name, "standard" if eps == 0 else f"robust at {t}", seed, value, int(x.sum()),
                                   len(x)))
    if not checks:
        row.note = "no exact records of tsipras-* models with theory rows in the summary"
        return [row]
    pvals = [float(stats.binomtest(k, n, min(max(v, 1e-12), 1 - 1e-12)).pvalue) for *_, v, k, n in checks]
    worst = int(np.argmin(pvals))
    name, kind, seed, value, k, n = checks[worst]
    seeds = list(dict.fromkeys(c[2] for c in checks))
    gaps = tuple(kk / nn - v for c, ki, _, v, kk, nn in checks if (c, ki) == (name, kind))
    level = 1 - (1 - ctx.opts.confidence) / len(checks)
    lo, hi = proportion_interval(k, n, level)
    row.evidence = Evidence(k / n - value, (lo - value, hi - value), min(1.0, pvals[worst] * len(checks)), 0.0,
                            gaps, f"exact binomial, Bonferroni over {len(checks)} closed forms")
    row.our_setting += seeds_note(seeds)
    which = f"{name} {kind}" + ("" if len(seeds) == 1 else f" (seed {seed})")
    row.our_value = (f"{len(checks)} closed forms; least fitting {which}: {pct(k / n)} vs {pct(value)} "
                     f"(interval at {100 * level:.2f}%)")
    return [row]


CLAIMS = (at_lowers_accuracy, eps_trend, synthetic_at, standard_below_one_percent, theorem_21, closed_forms)
