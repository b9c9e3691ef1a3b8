"""Randomized smoothing with Gaussian noise (Cohen, Rosenfeld & Kolter, 2019): CERTIFY and PREDICT.

The smoothed classifier is g(x) = argmax_c P_{delta ~ N(0, sigma^2 I)}[f(x + delta) = c] for a base
classifier f (the argmax of ``model``).  This mirrors the authors' reference ``Smooth`` class, with an
explicit ``torch.Generator`` so that results are reproducible per test point.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch
from scipy import stats

from .bounds import ABSTAIN, cp_lower
from .sampling import GaussianNoise, count_classes

__all__ = ["ABSTAIN", "CertifyResult", "Smooth", "certify_from_counts", "predict_from_counts"]


class CertifyResult(NamedTuple):
    """Output of CERTIFY: ``prediction`` (ABSTAIN = -1), l2 ``radius`` (0.0 on abstain), ``p_lower``."""

    prediction: int
    radius: float
    p_lower: float


def certify_from_counts(counts0: np.ndarray, counts: np.ndarray, sigma: float, alpha: float) -> CertifyResult:
    """CERTIFY from class counts: ``counts0`` (selection, n0 draws) and ``counts`` (estimation, n draws).

    Guarantee (when the two count vectors come from independent draws of the base classifier's
    predictions under N(0, sigma^2 I) noise at x): with probability at least 1 - alpha over that
    randomness, if the returned prediction is not ABSTAIN then it equals g(x) and g predicts it on the
    whole open l2 ball of the returned radius around x.  The class is c_A = argmax(counts0); its
    probability is bounded below by the one-sided Clopper-Pearson bound p_lower at level alpha on
    counts[c_A]; the result abstains if p_lower < 1/2, else radius = sigma * Phi^{-1}(p_lower).
    """
    counts0 = np.asarray(counts0)
    counts = np.asarray(counts)
    c_hat = int(np.argmax(counts0))
    n = int(counts.sum())
    p_lower = float(cp_lower(int(counts[c_hat]), n, alpha))
    if p_lower < 0.5:
        return CertifyResult(ABSTAIN, 0.0, p_lower)
    return CertifyResult(c_hat, float(sigma * stats.norm.ppf(p_lower)), p_lower)


def predict_from_counts(counts: np.ndarray, alpha: float) -> int:
    """PREDICT from class counts of n draws: the top class if a two-sided binomial test separates it.

    Guarantee: the probability (over the draws) that the returned value is a class different from
    g(x) is at most alpha (Hung & Fithian's test for the top category of a multinomial).  Returns the
    top class when ``binomtest(n_A, n_A + n_B, 0.5).pvalue <= alpha`` for the two largest counts
    n_A >= n_B, and ABSTAIN otherwise.
    """
    counts = np.asarray(counts)
    order = np.argsort(-counts, kind="stable")
    count1, count2 = int(counts[order[0]]), int(counts[order[1]])
    if count1 + count2 == 0:
        return ABSTAIN
    if stats.binomtest(count1, count1 + count2, p=0.5).pvalue > alpha:
        return ABSTAIN
    return int(order[0])


class Smooth:
    """A Gaussian-smoothed classifier g built on ``model`` (logits [B, C] for inputs [B, *shape]).

    Noise is added without clipping to [0, 1] (the guarantees are for the unclipped Gaussian).
    """

    ABSTAIN: int = ABSTAIN

    def __init__(
        self,
        model: torch.nn.Module | Callable[[torch.Tensor], torch.Tensor],
        num_classes: int,
        sigma: float,
        batch_size: int = 1000,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        if num_classes < 2:
            raise ValueError("num_classes must be at least 2")
        self.model = model
        self.num_classes = int(num_classes)
        self.sigma = float(sigma)
        self.batch_size = int(batch_size)
        self.noise = GaussianNoise(sigma)
        self.on_batch = on_batch  # called with the size of each chunk of draws (progress reporting)

    def sample_counts(self, x: torch.Tensor, num: int, generator: torch.Generator) -> np.ndarray:
        """Class counts of the base classifier on ``num`` draws of x + N(0, sigma^2 I)."""
        return count_classes(
            self.model, x, num, self.noise, self.num_classes, self.batch_size, generator, clamp=False,
            on_batch=self.on_batch,
        )

    def certify_counts(
        self, x: torch.Tensor, n0: int, n: int, generator: torch.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """One sampling pass for certification: (selection counts of n0 draws, estimation counts of n).

        The two count vectors come from disjoint, consecutive parts of the generator's stream, hence
        are independent; any certificate computed from them (CERTIFY, the mixed-classifier bounds)
        can reuse them.
        """
        counts0 = self.sample_counts(x, n0, generator)
        counts = self.sample_counts(x, n, generator)
        return counts0, counts

    def certify(
        self, x: torch.Tensor, n0: int, n: int, alpha: float, generator: torch.Generator
    ) -> CertifyResult:
        """CERTIFY: (prediction, radius, p_lower) for the single input ``x`` [*shape].

        Guarantee: with probability at least 1 - alpha over the randomness of this call, if the
        returned prediction is not ABSTAIN (-1), it equals g(x) and g's prediction is constant on the
        open l2 ball of the returned radius around x.
        """
        counts0, counts = self.certify_counts(x, n0, n, generator)
        return certify_from_counts(counts0, counts, self.sigma, alpha)

    def predict(self, x: torch.Tensor, n: int, alpha: float, generator: torch.Generator) -> int:
        """PREDICT: g(x) or ABSTAIN (-1).

        Guarantee: with probability at least 1 - alpha over the randomness of this call, the returned
        value is either ABSTAIN or g(x), i.e. P(returns a class != g(x)) <= alpha.
        """
        return predict_from_counts(self.sample_counts(x, n, generator), alpha)
