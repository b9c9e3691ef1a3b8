"""Samples used by the group-sequential (eps, kappa) test vs the fixed-n test, and the error rates of both.

Every input is a Bernoulli oracle with success probability p = P_t[G(t) = G(x)] (what the Monte-Carlo core
observes on a real input), so the numbers are exact properties of the tests, not of a model:

1. false-certification rate at the boundary p = 1 - kappa (the worst case for a valid test) of the fixed
   Clopper-Pearson test, the sequential test, and the paper's procedure (an exact binomial test at the FULL
   level alpha after every look, Zhang et al. 2023, Algorithm 2), each over ``--inputs`` simulated inputs;
2. samples used by the sequential test on clearly robust (p >= 0.999) and clearly non-robust (p <= 0.95)
   inputs, and near the boundary, against the fixed test's n at the same alpha;
3. how the share of alpha spent at the first look trades the first look's distance to the floor
   ln(alpha) / ln(1 - kappa) against the samples needed near the boundary.

With ``--records`` it also summarizes the samples the pipeline's sequential test used on real inputs
(merged records ``results/<dataset>/certify/<classifier>/prob-sequential.csv``).

    python benchmarks/sequential_samples.py                      # kappa = alpha = 0.01, n_max 1e4 and 1e5
    python benchmarks/sequential_samples.py --records results/digits/certify/*/prob-sequential.csv
"""

from __future__ import annotations

import argparse
import glob
import math
import sys
from pathlib import Path

import numpy as np

from tradeoff.probabilistic.sequential import NaiveSequentialTest, Outcome, SequentialTest, fixed_test


def simulate(rule, p: float, inputs: int, rng: np.random.Generator) -> dict[str, float]:
    """Run a look-based rule on ``inputs`` Bernoulli(p) oracles (vectorised over its critical counts)."""
    looks = np.asarray(rule.looks)
    k_rob, k_not = rule.critical_counts()
    k = np.cumsum(rng.binomial(np.diff(np.concatenate([[0], looks])), p, size=(inputs, len(looks))), axis=1)
    robust, not_robust = k >= k_rob, k <= k_not
    decided = robust | not_robust
    first = np.where(decided.any(axis=1), decided.argmax(axis=1), len(looks) - 1)
    rows = np.arange(inputs)
    used = looks[first]
    return {"robust": float(robust[rows, first].mean()), "not_robust": float(not_robust[rows, first].mean()),
            "mean": float(used.mean()), "median": float(np.median(used)), "max": float(used.max())}


def fixed_rates(n: int, kappa: float, alpha: float, p: float, inputs: int, rng: np.random.Generator) -> dict:
    k = rng.binomial(n, p, size=inputs)
    decision = {int(v): fixed_test(int(v), n, kappa, alpha) for v in np.unique(k)}
    out = np.array([decision[int(v)].value for v in k])
    return {"robust": float(np.mean(out == Outcome.ROBUST.value)),
            "not_robust": float(np.mean(out == Outcome.NOT_ROBUST.value))}


def slack(rate: float, trials: int) -> float:
    return 3.0 * math.sqrt(max(rate, 1e-12) * (1.0 - rate) / trials)


def error_table(kappa: float, alpha: float, n_max: int, share: float, inputs: int,
                rng: np.random.Generator) -> list[str]:
    p = 1.0 - kappa
    seq = SequentialTest(kappa, alpha, n_max, first_look_share=share)
    lines = [f"### False certification at the boundary p = 1 − κ = {p:g} (α = {alpha:g}, n_max = {n_max}, "
             f"{inputs} simulated inputs; ± = 3 standard errors)", "",
             "| test | looks | false-certification rate | ≤ α? |", "|---|---|---|---|"]
    fixed = fixed_rates(n_max, kappa, alpha, p, inputs, rng)["robust"]
    lines.append(f"| fixed (Clopper–Pearson at n_max) | 1 | {fixed:.4f} ± {slack(fixed, inputs):.4f} | "
                 f"{'yes' if fixed <= alpha + slack(alpha, inputs) else 'NO'} |")
    s = simulate(seq, p, inputs, rng)["robust"]
    lines.append(f"| sequential (α-spending, {share:g} α at the first look) | {len(seq.looks)} | "
                 f"{s:.4f} ± {slack(s, inputs):.4f} | "
                 f"{'yes' if s <= alpha + slack(alpha, inputs) else 'NO'} |")
    for step in (n_max // 100, n_max // 20):
        naive = simulate(NaiveSequentialTest(kappa, alpha, n_max, step=step), p, inputs, rng)["robust"]
        lines.append(f"| naive: exact test at full α every {step} samples (contrast) | {n_max // step} | "
                     f"{naive:.4f} ± {slack(naive, inputs):.4f} | "
                     f"{'yes' if naive <= alpha + slack(alpha, inputs) else 'NO'} |")
    return lines + [""]


def samples_table(kappa: float, alpha: float, n_max: int, share: float, inputs: int,
                  rng: np.random.Generator) -> list[str]:
    seq = SequentialTest(kappa, alpha, n_max, first_look_share=share)
    lines = [f"### Samples used, κ = {kappa:g}, α = {alpha:g}: sequential (looks {seq.looks[:3]}…, "
             f"K = {len(seq.looks)}, {share:g} α at the first look; floor ln α / ln(1 − κ) = "
             f"{math.log(alpha) / math.log(1 - kappa):.1f}) vs fixed n = {n_max}", "",
             "| p = P[G(t) = G(x)] | case | sequential: certified / not robust | mean samples | median | max "
             "| mean / fixed n | fixed: certified / not robust |", "|---|---|---|---|---|---|---|---|"]
    for p, case in ((1.0, "clearly robust"), (0.999, "clearly robust"), (0.995, "robust, near boundary"),
                    (0.99, "boundary"), (0.98, "not robust, near boundary"), (0.95, "clearly not robust"),
                    (0.5, "clearly not robust")):
        s = simulate(seq, p, inputs, rng)
        f = fixed_rates(n_max, kappa, alpha, p, inputs, rng)
        lines.append(f"| {p:g} | {case} | {s['robust']:.3f} / {s['not_robust']:.3f} | {s['mean']:.0f} | "
                     f"{s['median']:.0f} | {s['max']:.0f} | {s['mean'] / n_max:.3f} | "
                     f"{f['robust']:.3f} / {f['not_robust']:.3f} |")
    return lines + [""]


def spending_table(kappa: float, alpha: float, n_max: int, inputs: int, rng: np.random.Generator) -> list[str]:
    floor = math.log(alpha) / math.log(1 - kappa)
    lines = [f"### Share of α at the first look, κ = {kappa:g}, α = {alpha:g}, n_max = {n_max} (floor ln α / ln(1 − κ) "
             f"= {floor:.1f}; false certification over {inputs} inputs at p = 1 − κ, samples over 2000 inputs)", "",
             "| share | looks | first look / floor | false-certification rate | mean samples, p = 0.995 "
             "| mean samples, p = 0.98 |", "|---|---|---|---|---|---|"]
    for share in (0.2, 0.5, 0.75, 0.9, 0.99):
        seq = SequentialTest(kappa, alpha, n_max, first_look_share=share)
        false = simulate(seq, 1.0 - kappa, inputs, rng)["robust"]
        near_in, near_out = simulate(seq, 0.995, 2_000, rng)["mean"], simulate(seq, 0.98, 2_000, rng)["mean"]
        lines.append(f"| {share:g} | {seq.looks[:3]}… (K = {len(seq.looks)}) | {seq.looks[0] / floor:.3f} | "
                     f"{false:.4f} ± {slack(false, inputs):.4f} | {near_in:.0f} | {near_out:.0f} |")
    return lines + [""]


def records_table(paths: list[str]) -> list[str]:
    from tradeoff.io import read_records

    lines = ["### Pipeline records: samples used by the sequential test on real inputs (summary κ)", "",
             "| records | points | n_max | certified: mean samples | not robust: mean samples | undecided "
             "| all: mean / n_max |", "|---|---|---|---|---|---|---|"]
    for path in paths:
        frame, meta = read_records(path)
        n_max = int(meta["settings"]["n_max"])

        def mean_of(outcome: str, frame=frame) -> str:
            sel = frame[frame["outcome"] == outcome]["samples"]
            return f"{sel.mean():.0f} (n={len(sel)})" if len(sel) else "–"

        lines.append(f"| {path} | {len(frame)} | {n_max} | {mean_of('robust')} | {mean_of('not_robust')} | "
                     f"{int((frame['outcome'] == 'undecided').sum())} | {frame['samples'].mean() / n_max:.3f} |")
    return lines + [""]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kappa", type=float, default=0.01)
    parser.add_argument("--alpha", type=float, default=0.01)
    parser.add_argument("--n-max", type=int, nargs="+", default=[1000, 10_000, 100_000])
    parser.add_argument("--first-look-share", type=float, default=0.9, help="share of alpha at the first look")
    parser.add_argument("--inputs", type=int, default=100_000, help="simulated inputs per error-rate cell")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--records", nargs="*", default=[], help="merged prob-sequential.csv records (globs)")
    parser.add_argument("--out", default=None, help="also write the markdown to this file")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    lines = ["## Sequential vs fixed-n (ε, κ) certification", ""]
    lines += error_table(args.kappa, args.alpha, 10_000, args.first_look_share, args.inputs, rng)
    for n_max in args.n_max:
        lines += samples_table(args.kappa, args.alpha, n_max, args.first_look_share, 2_000, rng)
    lines += spending_table(args.kappa, args.alpha, 10_000, args.inputs, rng)
    paths = sorted(p for pattern in args.records for p in glob.glob(pattern))
    if paths:
        lines += records_table(paths)
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1:])
