"""Merkli et al. 2023, "Just avoid robust inaccuracy": L_ERA, the robustness selector and the composition."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .common import Context, means
from .records import aligned, cid, clean_correct, col, pct, seeds_note
from .table import Row

PAPER = "Merkli et al. 2023 (ERA)"
FIG1 = "Merkli et al. 2023, Figure 1 and Appendix A.2"
FIG1_SETTING = "three 2-D Gaussian classes, one of them rare; L_std, L_TRADES, L_ERA"
TABLE1 = "Merkli et al. 2023, abstract and Table 1"
G3 = "gauss3-{}"


def _wrong_either(*frames: pd.DataFrame) -> int:
    """Points that some model misclassifies: only they can be robust-inaccurate (the design's capacity)."""
    return int(np.sum(np.any([col(f, "correct") < 1 for f in frames], axis=0)))


def _inaccuracy(ctx: Context, row: Row, names: tuple[str, str], a_of, b_of) -> Row:
    """Fill ``row`` with robust inaccuracy of a − of b, pooled over seeds; capacity = points either gets wrong."""
    frames = ctx.recs.per_seed(lambda s: (lambda a, b: None if a is None or b is None else aligned(a, b))(
        a_of(s), b_of(s)))
    row.evidence, _ = ctx.compare(lambda s: (col(frames[s][0], "robust_inaccurate"),
                                             col(frames[s][1], "robust_inaccurate")) if s in frames else None,
                                  capacity=lambda s: _wrong_either(*frames[s]))
    if frames:
        a, b, ra, rb = (float(np.mean([f[k][c].mean() for f in frames.values()]))
                        for c in ("robust_inaccurate", "robust_accurate") for k in (0, 1))
        row.our_value = (f"robust inaccuracy {names[0]} {pct(a)} vs {names[1]} {pct(b)} (robust accuracy "
                         f"{pct(ra)} vs {pct(rb)}); "
                         f"{_wrong_either(*next(iter(frames.values())))} points misclassified by either")
        row.our_setting += seeds_note(list(frames))
    return row


def robust_inaccuracy(ctx: Context) -> list[Row]:
    rows = []
    for t in ctx.recs.threats_for(["era", "trades"], ["robustness"]):
        row = Row(cid("era-robust-inaccuracy", t), PAPER, "Training with L_ERA lowers robust inaccuracy compared with "
                  "TRADES", "CIFAR-10, ε∞ 1/255 and 2/255, fine-tuning a robust model",
                  "up to 97.28% fewer robust-inaccurate samples", "Merkli et al. 2021 (earlier version), abstract",
                  f"{ctx.dataset} {t}, trades → era, robust inaccuracy (attack on the own prediction)",
                  note="robust inaccuracy can only occur on misclassified points")
        rows.append(_inaccuracy(ctx, row, ("trades", "era"), lambda s, t=t: ctx.recs.get("trades", "robustness", t, s),
                                lambda s, t=t: ctx.recs.get("era", "robustness", t, s)))
        if row.evidence is None:
            row.note = f"no robustness records of era and trades at {t}"
    return rows


def _standard_robust(ctx: Context, t: str, seed: int) -> tuple[pd.DataFrame | None, str]:
    frame = ctx.recs.get(ctx.opts.standard, "robustness", t, seed)
    if frame is not None:
        return frame, "robust_accurate"
    return ctx.recs.robust(ctx.opts.standard, t, ctx.opts.robust_evaluations, seed)[0], "correct"


def composite_gain(ctx: Context) -> list[Row]:
    """The composition raises robust accuracy over the standard model, and costs (almost) no clean accuracy."""
    o, rows = ctx.opts, []
    comp_id = o.era_composites.get("era", "era-composite")
    tol = o.clean_tolerance
    for t in ctx.recs.threats_for([comp_id], ["composite"]):
        def load(seed: int, t=t):
            comp = ctx.recs.get(comp_id, "composite", t, seed)
            std, column = _standard_robust(ctx, t, seed)
            if comp is None or std is None:
                return None
            comp, std = aligned(comp, std)
            return (col(comp, "robust_accurate"), col(std, column)), (col(comp, "correct"), clean_correct(std))

        found = ctx.recs.per_seed(load)
        setting = f"{ctx.dataset} {t}, {comp_id} vs {o.standard}, end-to-end adaptive attack{seeds_note(list(found))}"
        gain = Row(cid("era-composite-gain", t), PAPER, "The composition (ERA where robust, else standard) raises "
                   "robust accuracy over the standard model", "CIFAR-10, ε∞ = 1/255, standard WRN-40-10 + ERA branch",
                   "robust accuracy 26.2% → 87.8%", TABLE1, setting, paper_effect=0.616)
        clean = Row(cid("era-composite-clean-cost", t), PAPER, f"… at almost no clean cost (a loss of at most "
                    f"{100 * tol:g} percentage points)", "CIFAR-10, ε∞ = 1/255", "natural accuracy 97.8% → 98.0%",
                    TABLE1, setting, kind="bound")
        if not found:
            gain.note = clean.note = f"no composite record of {comp_id} or no record of {o.standard} at {t}"
            rows += [gain, clean]
            continue
        gain.evidence, pairs = ctx.compare(lambda s, found=found: found[s][0] if s in found else None)
        cpairs = {s: v[1] for s, v in found.items()}
        clean.evidence = ctx.bootstrap([lambda idx, d=a - b: d[idx].mean(axis=1) + tol for a, b in cpairs.values()],
                                       min(len(a) for a, _ in cpairs.values()))
        b, a = means(pairs)
        gain.our_value = f"robust {pct(a)} → {pct(b)}"
        b, a = means(cpairs)
        clean.our_value = f"clean {pct(a)} → {pct(b)}; slack = clean change + {100 * tol:g} points"
        rows += [gain, clean]
    return rows


def branch(ctx: Context) -> list[Row]:
    """Figure 1's point on the composition: an ERA branch avoids the TRADES branch's robust inaccuracy."""
    o, rows = ctx.opts, []
    era_id = o.era_composites.get("era", "era-composite")
    tr_id = o.era_composites.get("trades", "era-composite-trades")
    for t in ctx.recs.threats_for([era_id, tr_id], ["composite"]):
        row = Row(cid("era-branch-vs-trades", t), PAPER, "An ERA branch gives the composition less robust "
                  "inaccuracy than a TRADES branch", FIG1_SETTING, "robust inaccuracy 1.6% (TRADES) → 0% (ERA) at "
                  "equal robust accuracy 98.4%", FIG1, f"{ctx.dataset} {t}, {tr_id} → {era_id}, same selector and "
                  "adaptive attack", paper_effect=0.016)
        rows.append(_inaccuracy(ctx, row, (tr_id, era_id), lambda s, t=t: ctx.recs.get(tr_id, "composite", t, s),
                                lambda s, t=t: ctx.recs.get(era_id, "composite", t, s)))
        if row.evidence is None:
            row.note = f"no composite records of {era_id} and {tr_id} at {t}"
    return rows


def _g3(ctx: Context, model: str, seed: int) -> pd.DataFrame | None:
    return ctx.recs.get(G3.format(model), "robustness", "none", seed)


def _fig1_row(key: str, claim: str, value: str, effect: float, setting: str) -> Row:
    return Row(f"era-fig1-{key}", PAPER, claim, FIG1_SETTING, value, FIG1,
               f"the three-Gaussian toy (gauss3), {setting}", paper_effect=effect)


def _composite(std: pd.DataFrame, era: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Figure 1's composition from the records: ERA's answer where ERA is robust, else the standard model's.

    Robust accuracy per point is (s·acc_era + (1−s)·acc_std)·(s·rob_era + (1−s)·rob_std) with s = ERA robust
    (Merkli et al. 2023, Sec. 3.3, as their evaluation code computes it); returns (clean, robust) correct.
    """
    s = col(era, "robust")
    acc = s * col(era, "correct") + (1 - s) * col(std, "correct")
    rob = s * col(era, "robust") + (1 - s) * col(std, "robust")
    return acc, acc * rob


def figure1(ctx: Context) -> list[Row]:
    rows = []
    std_row = _fig1_row("standard", "Standard training is accurate everywhere but not robust everywhere",
                        "100% natural, 91.1% robust accuracy (L_std)", 1.0 - 0.911, "standard: natural minus robust "
                        "accuracy")
    pairs = ctx.recs.per_seed(lambda s: (lambda f: None if f is None else (col(f, "correct"),
                                                                          col(f, "robust_accurate")))(
        _g3(ctx, "standard", s)))
    if pairs:
        std_row.evidence, _ = ctx.compare(lambda s: pairs.get(s))
        natural, robust = means(pairs)
        std_row.our_value = f"natural {pct(natural)}, robust {pct(robust)}"
        std_row.our_setting += seeds_note(list(pairs))
    else:
        std_row.note = "no gauss3 robustness record of the standard model"
    rows.append(std_row)

    trades = _fig1_row("trades", "TRADES is robust but inaccurate on some points (the rare class)",
                       "1.6% robust inaccuracy (L_TRADES) vs none (L_std)", 0.016,
                       "robust inaccuracy trades minus standard")
    rows.append(_inaccuracy(ctx, trades, ("trades", "standard"), lambda s: _g3(ctx, "trades", s),
                            lambda s: _g3(ctx, "standard", s)))
    found = [f for f in ctx.recs.per_seed(lambda s: _g3(ctx, "trades", s)).values() if len(f)]
    if found:  # pooled over the seeds: the rarest class of each seed's test points
        rare = [f["label"].value_counts().idxmin() for f in found]
        share = sum(f.loc[f["label"] == c, "robust_inaccurate"].sum() for f, c in zip(found, rare, strict=True)) / max(
            sum(f["robust_inaccurate"].sum() for f in found), 1)
        trades.our_value += (f"; {pct(share)} of TRADES's robust-inaccurate points are of the rarest class "
                             f"{'/'.join(map(str, dict.fromkeys(rare)))}")
    era_row = _fig1_row("era", "L_ERA avoids TRADES's robust inaccuracy", "1.6% (L_TRADES) → 0% (L_ERA) "
                        "robust inaccuracy at equal robust accuracy 98.4%", 0.016, "robust inaccuracy trades → era")
    rows.append(_inaccuracy(ctx, era_row, ("trades", "era"), lambda s: _g3(ctx, "trades", s),
                            lambda s: _g3(ctx, "era", s)))

    comp = _fig1_row("composition", "The composition keeps the standard model's accuracy and ERA's robustness",
                     "composition 100% natural, 98.4% robust vs L_std 91.1% robust", 0.984 - 0.911,
                     "robust accuracy of the composition (ERA where ERA is robust, else standard) minus standard's")
    both = ctx.recs.per_seed(lambda s: (lambda a, b: None if a is None or b is None else aligned(a, b))(
        _g3(ctx, "standard", s), _g3(ctx, "era", s)))
    if both:
        comp.evidence, _ = ctx.compare(lambda s: (_composite(*both[s])[1], col(both[s][0], "robust_accurate"))
                                       if s in both else None)
        acc, rob = means({s: _composite(*frames) for s, frames in both.items()})
        comp.our_value = f"composition natural {pct(acc)}, robust {pct(rob)}"
        comp.our_setting += seeds_note(list(both))
    else:
        comp.note = "no gauss3 robustness records of the standard and ERA models"
    rows.append(comp)
    for r in rows:
        if r.evidence is None and not r.note:
            r.note = "no gauss3 robustness records"
    return rows


CLAIMS = (robust_inaccuracy, composite_gain, branch, figure1)
