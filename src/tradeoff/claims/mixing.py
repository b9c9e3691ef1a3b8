"""Bai et al. 2023, mixing classifiers: the fixed-weight mixture of a standard and a robust model."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import numpy as np
import pandas as pd

from .common import Context, means
from .records import Records, aligned, cid, clean_correct, col, pct, seeds_note
from .table import Row

PAPER = "Bai et al. 2023 (mixing classifiers)"
Curve = dict[str, tuple[np.ndarray, np.ndarray]]
MIX = r"mix-{mode}-[0-9.eE+-]+"


def mixtures(recs: Records, mode: str, threat: str | None = None,
             evaluations: Sequence[str] = ()) -> list[tuple[float, str]]:
    """``[(α, mix-<mode>-<α>), ...]`` sorted by α (only those with a record of ``evaluations`` at ``threat``)."""
    keys = set(recs.keys())
    found = sorted((float(m.group(1)), c) for c in recs.classifiers(MIX.format(mode=mode))
                   if (m := re.fullmatch(rf"mix-{mode}-([0-9.eE+-]+)", c)))
    return [(a, c) for a, c in found if threat is None or any((c, e, threat) in keys for e in evaluations)]


def curve_points(ctx: Context, t: str, names: Sequence[str], seed: int, required: Sequence[str]) -> Curve | None:
    """Per classifier (clean correct, robust correct) on the points all share, or None if a required one is absent."""
    frames = {}
    for name in names:
        frame = ctx.recs.robust(name, t, ctx.opts.robust_evaluations, seed)[0]
        if frame is not None:
            frames[name] = frame
    if any(r not in frames for r in required):
        return None
    return {n: (clean_correct(f), col(f, "correct")) for n, f in zip(frames, aligned(*frames.values()), strict=True)}


def curve_text(curves: dict[int, Curve], names: Sequence[str]) -> str:
    """``"<name>: <clean>/<robust>; ..."``: each classifier's accuracies, averaged over the seeds that have it."""
    parts = []
    for name in names:
        found = [pts[name] for pts in curves.values() if name in pts]
        if found:
            clean, robust = (float(np.mean([f[k].mean() for f in found])) for k in (0, 1))
            parts.append(f"{name.removeprefix('mix-')}: {pct(clean)}/{pct(robust)}")
    return "; ".join(parts) + " (clean/robust)"


def interp_curve(c: np.ndarray, r: np.ndarray, at: np.ndarray) -> np.ndarray:
    order = np.argsort(c, kind="stable")
    return np.interp(at, c[order], r[order])


def _means(v: np.ndarray, idx: np.ndarray) -> np.ndarray:
    return v[idx].mean(axis=1)


def chord_gap(pts: Curve, g: str, h: str, mixed: Sequence[str]):
    """Statistic: mean height of the mixtures' robust accuracy above the chord between the base models.

    Beyond a base model's clean accuracy the chord stays at that model's robust accuracy (no extrapolation).
    """
    def gap(idx: np.ndarray) -> np.ndarray:
        cg, rg, ch, rh = (_means(v, idx) for v in (*pts[g], *pts[h]))
        total = np.zeros(idx.shape[0])
        for name in mixed:
            cm, rm = (_means(v, idx) for v in pts[name])
            with np.errstate(divide="ignore", invalid="ignore"):
                frac = np.clip(np.where(cg != ch, (cm - ch) / (cg - ch), 0.5), 0.0, 1.0)
            total += rm - (rh + frac * (rg - rh))
        return total / len(mixed)
    return gap


def above_chord(ctx: Context) -> list[Row]:
    o, rows = ctx.opts, []
    for t in ctx.recs.threats_for(MIX.format(mode="prob"), o.robust_evaluations):
        mixes = [c for _, c in mixtures(ctx.recs, "prob", t, o.robust_evaluations)]
        bases = [o.standard, o.robust_base]
        curves = ctx.recs.per_seed(lambda s, t=t, names=[*bases, *mixes]: curve_points(ctx, t, names, s, names[:2])
                                   if len(names) > 2 else None)
        row = Row(cid("mixing-above-chord", t), PAPER, "The probability-mixed classifier's (clean, robust) points lie "
                  "above the chord between the two base models", "CIFAR-10/100, ℓ∞ 8/255, AutoAttack, α ∈ [1/2, 1]",
                  "most of the robust model's robustness at a much higher clean accuracy",
                  "Bai et al. 2023, abstract and Sec. 3",
                  f"{ctx.dataset} {t}, {o.standard} + {o.robust_base}, {len(mixes)} weights α, mean height above "
                  f"the chord{seeds_note(list(curves))}")
        if not curves:
            row.note = f"no mix-prob-<α> records with both base models at {t}"
            rows.append(row)
            continue
        stats = [chord_gap(pts, o.standard, o.robust_base, [c for c in mixes if c in pts]) for pts in curves.values()]
        row.evidence = ctx.bootstrap(stats, min(len(p[o.standard][0]) for p in curves.values()))
        row.our_value = curve_text(curves, [*bases, *mixes])
        rows.append(row)
    return rows


def equal_clean_advantage(pc: np.ndarray, pr: np.ndarray, p_mix: np.ndarray, lc: np.ndarray, lr: np.ndarray,
                          l_mix: np.ndarray) -> tuple[float, int]:
    """Mean of (probability − logit) robust accuracy at equal clean accuracy, and the number of comparisons.

    Each curve is (clean, robust) of its points, joined in order of clean accuracy (both include the base
    models). Each mixture of one mode whose clean accuracy lies within the other curve's clean range is compared
    with the other curve interpolated there: ``r_p − L(c_p)`` for probability mixtures, ``P(c_l) − r_l`` for
    logit mixtures. ``p_mix``/``l_mix`` mark the mixtures (the base models are ends, not comparisons).
    """
    inside_l = p_mix & (pc >= lc.min()) & (pc <= lc.max())
    inside_p = l_mix & (lc >= pc.min()) & (lc <= pc.max())
    d = np.concatenate([pr[inside_l] - interp_curve(lc, lr, pc[inside_l]),
                        interp_curve(pc, pr, lc[inside_p]) - lr[inside_p]])
    return (float(d.mean()) if d.size else math.nan), int(d.size)


def _advantage(pts: Curve, p_all: list[str], l_all: list[str], bases: list[str]):
    p_mix, l_mix = (np.array([c not in bases for c in group]) for group in (p_all, l_all))

    def advantage(idx: np.ndarray) -> np.ndarray:
        pc, pr, lc, lr = (np.stack([_means(pts[c][k], idx) for c in group], axis=1)
                          for group, k in ((p_all, 0), (p_all, 1), (l_all, 0), (l_all, 1)))
        return np.array([equal_clean_advantage(pc[j], pr[j], p_mix, lc[j], lr[j], l_mix)[0]
                         for j in range(idx.shape[0])])
    return advantage


def prob_vs_logit(ctx: Context) -> list[Row]:
    o, rows = ctx.opts, []
    for t in ctx.recs.threats_for(MIX.format(mode="(prob|logit)"), o.robust_evaluations):
        prob = [c for _, c in mixtures(ctx.recs, "prob", t, o.robust_evaluations)]
        logit = [c for _, c in mixtures(ctx.recs, "logit", t, o.robust_evaluations)]
        bases = [o.standard, o.robust_base]
        row = Row(cid("mixing-prob-vs-logit", t), PAPER,
                  "Mixing probabilities gives more robust accuracy than mixing logits at equal clean accuracy",
                  "CIFAR-10, logits-vs-probabilities ablation", "probability mixing has the better trade-off",
                  "Bai et al. 2023, Sec. 3: why probabilities, not logits, are mixed",
                  f"{ctx.dataset} {t}, {len(prob)} probability and {len(logit)} logit mixtures of {o.standard} and "
                  f"{o.robust_base}, each against the other mode's curve at its clean accuracy")
        if not prob or not logit:
            row.note = (f"only one mixing mode was evaluated at {t} (the comparison needs "
                        "`mixing.modes: [prob, logit]`)")
            rows.append(row)
            continue
        curves = ctx.recs.per_seed(lambda s, t=t, names=[*bases, *prob, *logit]: curve_points(ctx, t, names, s,
                                                                                                names[:2]))
        stats, est = [], math.nan
        for pts in curves.values():
            p_all = [*bases, *(c for c in prob if c in pts)]
            l_all = [*bases, *(c for c in logit if c in pts)]
            if len(p_all) > 2 and len(l_all) > 2:
                stats.append(_advantage(pts, p_all, l_all, bases))
                est = stats[-1](np.arange(len(pts[o.standard][0]))[None, :])[0]
        if not stats or not np.isfinite(est):
            row.note = "no mixture's clean accuracy lies within the other mode's curve, or records are missing"
            rows.append(row)
            continue
        row.evidence = ctx.bootstrap(stats, min(len(p[o.standard][0]) for p in curves.values()))
        row.our_setting += seeds_note(list(curves))
        row.our_value = curve_text(curves, [*prob, *logit])
        rows.append(row)
    return rows


def confidence_gap(ctx: Context) -> list[Row]:
    """Table I of Bai et al. 2023: margin on points right under the worst-case attack vs points wrong clean."""
    o, rows = ctx.opts, []
    for t in ctx.recs.threats_for([o.robust_base], ["confidence"]):
        def load(seed: int, t=t):
            margins = ctx.recs.get(o.robust_base, "confidence", t, seed)
            worst, ev = ctx.recs.robust(o.robust_base, t, o.robust_evaluations, seed)
            return None if margins is None or worst is None else (*aligned(margins, worst), ev)

        found = ctx.recs.per_seed(load)
        row = Row(cid("mixing-confidence-gap", t), PAPER, "The robust model is more confident on points it gets "
                  "right under attack than on points it gets wrong clean", "CIFAR-10 robust base model, "
                  "probability margin", "mean margin 0.767 (correct, attacked) vs 0.434 (incorrect, clean)",
                  "Bai et al. 2023, Table I", f"{ctx.dataset} {t}, {o.robust_base}, margin p_y − max_(i≠y) p_i",
                  paper_effect=0.767 - 0.434, unit="margin")
        stats, texts = [], []
        for m, w, ev_name in found.values():
            ok, bad = col(w, "correct") > 0, col(m, "clean_correct") < 1
            adv_m, clean_m = col(m, "adv_margin"), col(m, "clean_margin")
            if ok.any() and bad.any():
                def gap(idx, ok=ok, bad=bad, adv_m=adv_m, clean_m=clean_m):
                    a_w, c_w = ok[idx], bad[idx]
                    with np.errstate(invalid="ignore", divide="ignore"):
                        return (adv_m[idx] * a_w).sum(1) / a_w.sum(1) - (clean_m[idx] * c_w).sum(1) / c_w.sum(1)
                stats.append(gap)
                texts.append(f"{adv_m[ok].mean():.3f} (n = {int(ok.sum())}) vs {clean_m[bad].mean():.3f} "
                             f"(n = {int(bad.sum())})")
                row.our_setting = (f"{ctx.dataset} {t}, {o.robust_base}; right under attack = the {ev_name} record "
                                   "(per-point worst case), its margin at the margin record's attack point")
        if not stats:
            row.note = (f"no margin and attack records of {o.robust_base} at {t}" if not found else
                        "no point is right under attack, or none is wrong clean")
        else:
            row.evidence = ctx.bootstrap(stats, min(len(v[0]) for v in found.values()))
            row.our_value = "; ".join(texts) + seeds_note(list(found))
        rows.append(row)
    return rows


def lost_below_half(ctx: Context) -> list[Row]:
    """Bai et al. 2023: the robustness guarantee needs α ≥ 1/2; below it the standard model dominates."""
    o, rows = ctx.opts, []
    for t in ctx.recs.threats_for(MIX.format(mode="prob"), o.robust_evaluations):
        low = [(a, c) for a, c in mixtures(ctx.recs, "prob", t, o.robust_evaluations) if a <= 0.5]
        row = Row(cid("mixing-lost-below-half", t), PAPER,
                  "Robustness is lost when the robust model's weight α is at most 1/2",
                  "α ∈ [1/2, 1] needed: a probability margin cannot exceed 1", "no robustness guarantee for α < 1/2",
                  "Bai et al. 2023, Sec. 3: Theorems 1 and 2 assume α ≥ 1/2",
                  f"{ctx.dataset} {t}, robust accuracy of {o.robust_base} minus that of the mixture with the largest "
                  "α ≤ 1/2")
        if not low:
            row.note = f"no mix-prob-<α> with α ≤ 1/2 at {t}"
            rows.append(row)
            continue
        alpha, mix = low[-1]

        def load(seed: int, t=t, mix=mix):
            pts = curve_points(ctx, t, [o.robust_base, mix], seed, [o.robust_base, mix])
            return None if pts is None else (pts[o.robust_base][1], pts[mix][1])

        row.evidence, pairs = ctx.compare(load)
        row.our_setting += f" (α = {alpha:g}){seeds_note(list(pairs))}"
        if pairs:
            a, b = means(pairs)
            row.our_value = f"{o.robust_base} {pct(a)} vs {mix} {pct(b)} robust"
        else:
            row.note = f"no attack records of {o.robust_base} and {mix} at {t}"
        rows.append(row)
    return rows


def _certified(frame, radius: float, column: str) -> np.ndarray:
    pred, label = frame["prediction"].to_numpy(), frame["label"].to_numpy()
    return ((pred == label) & (pred >= 0) & (col(frame, column) >= radius)).astype(np.float64)


def _by_alpha(frame: pd.DataFrame | None) -> dict[float, pd.DataFrame] | None:
    """A certify-mixed record split by the weight α, or None unless it has α = 1 and some α < 1."""
    if frame is None:
        return None
    alphas = frame["alpha"].astype(float)
    found = {a: frame[alphas == a] for a in sorted(set(alphas))}
    return found if 1.0 in found and len(found) >= 2 else None


def certified_curve(by_alpha: dict[float, pd.DataFrame], r: float) -> Curve | None:
    """Per point (clean correct, certified correct at ℓ2 radius ``r``) of the standard model, the smoothed model
    alone (α = 1) and each mixture α < 1 of one certify-mixed record, or None without the clean predictions.

    Clean: the standard model's prediction, and the mixture's (the smoothed model's at α = 1) from the mixed
    probabilities at the clean point. Certified: the certified prediction is the label and its Theorem 2 radius is
    at least ``r`` (the standard model alone certifies nothing).
    """
    if not all({"mixed_clean_prediction", "standard_prediction"} <= set(f.columns) for f in by_alpha.values()):
        return None
    alphas = sorted(by_alpha)
    frames = dict(zip(alphas, aligned(*(by_alpha[a] for a in alphas)), strict=True))
    label = frames[1.0]["label"].to_numpy()
    standard = (frames[1.0]["standard_prediction"].to_numpy() == label).astype(np.float64)
    pts = {"standard": (standard, np.zeros_like(standard))}
    for a, frame in frames.items():
        pts[f"α = {a:g}"] = ((frame["mixed_clean_prediction"].to_numpy() == label).astype(np.float64),
                            _certified(frame, r, "radius_rs"))
    return pts


def certified_above_chord(ctx: Context) -> list[Row]:
    """The mixtures' (clean, certified) accuracies lie above the chord between the standard and the smoothed model.

    The mixture's Theorem 2 radius shrinks as α falls, so at r > 0 it never certifies a point the smoothed model
    alone does not; what mixing can buy is clean accuracy at a smaller certified cost than the straight line
    between the two base models (the certified analogue of ``above_chord``). Not testable where the smoothed model
    is at least as accurate on clean points as the standard model: there is no accuracy for the mixture to regain.
    """
    o, r, rows = ctx.opts, ctx.opts.mixed_radius, []
    smoothed = sorted({c for c, e, _ in ctx.recs.keys() if e == "certify-mixed"})
    for name in smoothed or ["gauss_aug"]:
        row = Row(f"mixing-certified-above-chord-{name}", PAPER, "The mixed classifier's (clean accuracy, certified "
                  f"accuracy at ℓ2 radius {r:g}) points lie above the chord between the standard and the smoothed "
                  "model", "α ∈ [1/2, 1], a randomized-smoothing robust base model",
                  "the mixture keeps a certificate (Theorem 2 radius) while regaining the standard model's accuracy",
                  "Bai et al. 2023, Sec. 3, Theorem 2",
                  f"{ctx.dataset}, {name} mixed with {o.standard}, Theorem 2 radii, mean height above the chord")
        def load(seed: int, name: str = name) -> Curve | None:
            by_alpha = _by_alpha(ctx.recs.get(name, "certify-mixed", "none", seed)) if smoothed else None
            return certified_curve(by_alpha, r) if by_alpha else None

        curves = ctx.recs.per_seed(load)
        if not curves:
            row.note = "no certify-mixed records with α = 1, some α < 1 and the clean predictions"
            rows.append(row)
            continue
        names = list(next(iter(curves.values())))
        mixed = [n for n in names[1:] if n != "α = 1"]
        row.our_setting += f" over {len(mixed)} weights α{seeds_note(list(curves))}"
        row.our_value = curve_text(curves, names).replace(" (clean/robust)", f" (clean/certified at r = {r:g})")
        standard, alone = (float(np.mean([pts[n][0].mean() for pts in curves.values()])) for n in ("standard", "α = 1"))
        if standard <= alone:
            row.note = (f"the smoothed model alone is at least as accurate on clean points as {o.standard} "
                        f"({pct(alone)} vs {pct(standard)}): there is no clean accuracy for the mixture to regain")
            rows.append(row)
            continue
        stats = [chord_gap(pts, "standard", "α = 1", mixed) for pts in curves.values()]
        row.evidence = ctx.bootstrap(stats, min(len(p["standard"][0]) for p in curves.values()))
        rows.append(row)
    return rows


CLAIMS = (above_chord, prob_vs_logit, confidence_gap, lost_below_half, certified_above_chord)
