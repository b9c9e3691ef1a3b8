"""Cohen et al. 2019, randomized smoothing: certified accuracy against the radius and the noise level σ."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd

from .common import Context, means
from .records import aligned, col, pct, seeds_note
from .table import Row

PAPER = "Cohen et al. 2019 (randomized smoothing)"
SOURCE = "Cohen et al. 2019, CIFAR-10 ResNet-110 certified accuracies (official code's README table)"
CIFAR10 = {0.25: {0.0: 0.77, 0.25: 0.60, 0.5: 0.42, 0.75: 0.24},
           0.5: {0.0: 0.66, 0.25: 0.55, 0.5: 0.42, 0.75: 0.31},
           1.0: {0.0: 0.47, 0.25: 0.40, 0.5: 0.33, 0.75: 0.27}}
"""Certified accuracy by σ and ℓ2 radius (Cohen et al. 2019, CIFAR-10, n = 100,000, α = 0.001)."""


def sigma_of(name: str) -> float:
    match = re.search(r"(\d+(?:\.\d*)?)$", name)
    return float(match.group(1)) if match else math.nan


def radius_cap(sigma: float, n: int, alpha: float) -> float:
    """The largest radius CERTIFY can return with n samples at level α: σ·Φ⁻¹(α^(1/n)) (all n votes agree)."""
    from scipy import stats

    return float(sigma * stats.norm.ppf(alpha ** (1.0 / n)))


def _certified(frame: pd.DataFrame, radius: float) -> np.ndarray:
    pred, label = frame["prediction"].to_numpy(), frame["label"].to_numpy()
    return ((pred == label) & (pred >= 0) & (col(frame, "radius") >= radius)).astype(np.float64)


def _paper(sigma: float, r: float) -> float | None:
    return CIFAR10.get(sigma, {}).get(r)


def _frames(ctx: Context) -> dict[str, dict[int, pd.DataFrame]]:
    names = sorted({c for c, e, _ in ctx.recs.keys() if e == "certify-rs"}, key=sigma_of)
    found = {c: ctx.recs.per_seed(lambda s, c=c: ctx.recs.get(c, "certify-rs", "none", s)) for c in names}
    return {c: f for c, f in found.items() if f}


def falls_with_radius(ctx: Context) -> list[Row]:
    r, rows = ctx.opts.rs_radius, []
    frames = _frames(ctx)
    for name in frames or ["gauss_aug"]:
        sigma = sigma_of(name)
        a, b = _paper(sigma, 0.0), _paper(sigma, r)
        row = Row(f"rs-falls-with-radius-{name}", PAPER, "Certified accuracy falls as the certified radius grows",
                  f"CIFAR-10, σ = {sigma:g}", f"{pct(a)} at r = 0 → {pct(b)} at r = {r:g}" if a and b else
                  "no CIFAR-10 row at this σ", SOURCE, f"{ctx.dataset}, {name}, r = 0 vs r = {r:g}",
                  paper_effect=(a - b) if a and b else None)
        if name not in frames:
            row.note = "no certify-rs records (the certification stage is off?)"
        else:
            row.evidence, pairs = ctx.compare(lambda s, f=frames[name]: (_certified(f[s], 0.0), _certified(f[s], r))
                                              if s in f else None)
            x, y = means(pairs)
            row.our_value = f"{pct(x)} → {pct(y)}"
            row.our_setting += seeds_note(list(pairs))
        rows.append(row)
    return rows


def sigma_tradeoff(ctx: Context) -> list[Row]:
    """A larger σ costs clean accuracy (r = 0) and gains certified accuracy at a large radius (r ≥ 0.75)."""
    o = ctx.opts
    frames = _frames(ctx)
    names = list(frames)
    small, large = (names[0], names[-1]) if len(names) >= 2 else ("gauss_aug-<small σ>", "gauss_aug-<large σ>")
    s_small, s_large = sigma_of(small), sigma_of(large)
    rows = []
    for key, r, claim in (("clean-cost", 0.0, "A larger σ costs certified accuracy at radius 0"),
                          ("large-radius-gain", o.rs_large_radius, "A larger σ certifies more at large radii")):
        ps, pl = _paper(s_small, r), _paper(s_large, r)
        effect = None if ps is None or pl is None else (ps - pl if r == 0 else pl - ps)
        row = Row(f"rs-sigma-{key}", PAPER, claim, f"CIFAR-10, σ {s_small:g} → {s_large:g}, r = {r:g}",
                  f"{pct(ps)} → {pct(pl)}" if effect is not None else "no CIFAR-10 row at these σ", SOURCE,
                  f"{ctx.dataset}, {small} → {large}, certified accuracy at r = {r:g}", paper_effect=effect)
        if len(names) < 2:
            row.note = f"needs certify-rs records at ≥ 2 noise levels σ, found {len(names)}"
            rows.append(row)
            continue

        def load(seed: int, r=r):
            if seed not in frames[small] or seed not in frames[large]:
                return None
            fs, fl = aligned(frames[small][seed], frames[large][seed])
            a, b = _certified(fs, r), _certified(fl, r)
            return (a, b) if r == 0 else (b, a)

        row.evidence, pairs = ctx.compare(load)
        x, y = means(pairs)
        row.our_value = f"{pct(x)} → {pct(y)}" if r == 0 else f"{pct(y)} → {pct(x)}"
        row.our_setting += seeds_note(list(pairs))
        cap = radius_cap(s_small, o.rs_n, o.rs_alpha)
        if r > 0 and cap < r:
            row.note = (f"σ = {s_small:g} cannot certify beyond r = {cap:.3f} with n = {o.rs_n} and "
                        f"α = {o.rs_alpha:g}, so part of this gain is the certification budget's (the paper's "
                        "n = 100,000)")
        rows.append(row)
    return rows


CLAIMS = (falls_with_radius, sigma_tradeoff)
