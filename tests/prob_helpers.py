"""A one-point probabilistic certification driver for the tests: the library's samplers and tests wired
together on one input, without the stage's records (:mod:`tradeoff.probabilistic.records` is the stage)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch

from tradeoff.certify.sampling import ball_sampler, iter_predictions
from tradeoff.probabilistic.sequential import (
    NaiveSequentialTest,
    Outcome,
    SequentialTest,
    fixed_test,
    run_sequential,
)


def naive_sequential_test(
    draw: Callable[[int], int], kappa: float, alpha: float, n_max: int, step: int = 1
) -> tuple[Outcome, int]:
    """Test after every ``step`` samples at fixed level alpha, stop at the first rejection (Zhang et al. 2023's
    Algorithm 2). This does NOT control the error probability."""
    return run_sequential(draw, NaiveSequentialTest(kappa, alpha, n_max, step))


def certify_probabilistic(
    model: torch.nn.Module | Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    reference_label: int,
    eps: float,
    norm: str | float,
    kappa: float,
    alpha: float,
    n_max: int,
    generator: torch.Generator,
    batch_size: int = 1000,
    test: Literal["sequential", "fixed"] = "sequential",
    clamp: bool = True,
) -> tuple[Outcome, int, int]:
    """Test P_t[argmax model(t) = reference_label] >= 1 - kappa for t uniform in the eps-ball around x (clipped
    to [0, 1] with ``clamp``). Returns (outcome, successes, samples_used); ``test`` is 'sequential'
    (:class:`SequentialTest` up to ``n_max`` samples) or 'fixed' (:func:`fixed_test` on ``n_max`` samples).
    Guarantee: with probability at least 1 - alpha over this call's samples the outcome is not wrong."""
    sampler = ball_sampler(eps, norm)
    label = int(reference_label)
    successes = 0

    def draw(m: int) -> int:
        nonlocal successes
        s = 0
        for preds in iter_predictions(model, x, m, sampler, batch_size, generator, clamp=clamp):
            s += int((preds == label).sum().item())
        successes += s
        return s

    if test == "sequential":
        outcome, used = run_sequential(draw, SequentialTest(kappa, alpha, n_max))
        return outcome, successes, used
    if test == "fixed":
        k = draw(n_max)
        return fixed_test(k, n_max, kappa, alpha), k, n_max
    raise ValueError(f"test must be 'sequential' or 'fixed', got {test!r}")
