"""Decisions and metrics of the (eps, kappa)-probabilistic certificates, replayed from stored success counts.

A record of :mod:`tradeoff.probabilistic.records` keeps, per test input, the cumulative success counts at every
look of every kappa's :class:`~tradeoff.probabilistic.sequential.SequentialTest` design and at n_max (column
``counts``). Deciding a test at a kappa needs these counts only, so this module is free of torch: the stage's
merge and the figures drawn from its records use the same functions and give the same numbers.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from .sequential import Outcome, fixed_test, replay_sequential
from .settings import ProbSettings

__all__ = ["TESTS", "decide", "decisions", "decode_counts", "encode_counts", "metrics"]

TESTS = ("fixed", "sequential")
"""The tests a record can be decided by: one Clopper-Pearson test at n_max, or the group-sequential design."""


def encode_counts(counts: Mapping[int, int]) -> str:
    """``{n: k}`` as ``"n:k;n:k"`` in increasing n (the record's ``counts`` column)."""
    return ";".join(f"{int(n)}:{int(counts[n])}" for n in sorted(counts))


def decode_counts(text: str) -> dict[int, int]:
    """Inverse of :func:`encode_counts`."""
    out: dict[int, int] = {}
    for part in str(text).split(";"):
        n, k = part.split(":")
        out[int(n)] = int(k)
    return out


def decide(counts: Mapping[int, int], test: str, kappa: float, settings: ProbSettings) -> tuple[Outcome, int, int]:
    """(outcome, samples used, successes) of ``test`` at ``kappa`` from the cumulative success counts of one
    input: ``fixed`` is :func:`fixed_test` on the count at n_max; ``sequential`` is :func:`replay_sequential`
    of kappa's design, the decision a separate run on the same sample stream would have made."""
    if test == "fixed":
        k = int(counts[settings.n_max])
        return fixed_test(k, settings.n_max, kappa, settings.alpha), settings.n_max, k
    if test == "sequential":
        return replay_sequential(counts, settings.design(kappa))
    raise ValueError(f"test must be one of {TESTS}, got {test!r}")


def decisions(frame: pd.DataFrame, test: str, kappa: float, settings: ProbSettings) -> pd.DataFrame:
    """Per-row (outcome, samples) of ``test`` at ``kappa``, replayed from the records' ``counts``."""
    out = [decide(decode_counts(c), test, kappa, settings) for c in frame["counts"]]
    return pd.DataFrame({"index": frame["index"].to_numpy(), "outcome": [o.value for o, _, _ in out],
                         "samples": [n for _, n, _ in out]})


def metrics(frame: pd.DataFrame, test: str, kappa: float, settings: ProbSettings) -> dict[str, float]:
    """Certified robust accuracy, certified robustness rate, not-robust / undecided rates, mean / median
    samples, for ``test`` at ``kappa`` over the records ``frame`` (fractions of all its rows)."""
    d = decisions(frame, test, kappa, settings)
    robust = (d["outcome"] == Outcome.ROBUST.value).to_numpy()
    correct = (frame["reference"].to_numpy() == frame["label"].to_numpy())
    samples = d["samples"].to_numpy(dtype=np.float64)
    return {
        "certified_accuracy": float(np.mean(robust & correct)),
        "certified_rate": float(np.mean(robust)),
        "not_robust_rate": float(np.mean(d["outcome"] == Outcome.NOT_ROBUST.value)),
        "undecided_rate": float(np.mean(d["outcome"] == Outcome.UNDECIDED.value)),
        "mean_samples": float(np.mean(samples)),
        "median_samples": float(np.median(samples)),
    }
