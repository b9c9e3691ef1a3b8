"""Probabilistic (eps, kappa) robustness certification by Monte-Carlo hypothesis testing.

Property of an input x with a reference label c fixed BEFORE sampling (normally the clean prediction
G(x)): P_{t ~ U(B(x, eps))}[G(t) = c] >= 1 - kappa.  Each sample is a Bernoulli trial with success
"prediction == c" and success probability p; x is robust iff p >= 1 - kappa.

Two tests are offered, both with exact binomial (Clopper-Pearson) bounds:

* :func:`fixed_test` -- one look after n samples;
* :class:`SequentialTest` -- a group-sequential design with pre-planned looks n_1 < ... < n_K and
  unequal alpha-spending (Lan & DeMets, 1983): look k tests at level alpha_k per side, with
  sum_k alpha_k <= alpha.  By the union bound over the K looks, P(some look wrongly rejects) <=
  sum_k alpha_k <= alpha no matter when (or whether) the test stops, so the guarantee survives optional
  stopping.  Most of alpha goes to the first look (``first_look_share``), which therefore comes close to
  the floor ln(alpha) / ln(1 - kappa) below which no valid test can certify even a run without a
  single failure; the rest is split equally over the later looks, which decide the cases near the
  boundary.  The design is simple, needs no asymptotics, and suits batched (GPU) sampling because looks
  fall on batch boundaries.  (Wald's SPRT controls its errors only outside an indifference region
  around 1 - kappa; confidence sequences are valid but less transparent.)  Clearly robust inputs and
  clearly non-robust ones stop at the first look.

For every p only one kind of error is possible (a false ROBUST needs p < 1 - kappa, a false
NOT_ROBUST needs p >= 1 - kappa), so each test's probability of a wrong decision is at most alpha.

Testing after every sample at a fixed level does NOT control the error (:class:`NaiveSequentialTest`, Zhang
et al. 2023's Algorithm 2; the claims check simulates its error rate next to :class:`SequentialTest`'s).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Iterator, Mapping, Sequence

import numpy as np

from ..certify.bounds import cp_lower, cp_upper, perfect_run_lower

__all__ = [
    "Outcome",
    "fixed_test",
    "GroupSequentialRule",
    "SequentialTest",
    "run_sequential",
    "run_sequential_many",
    "replay_sequential",
    "NaiveSequentialTest",
]


class Outcome(enum.Enum):
    """Decision of a probabilistic robustness test."""

    ROBUST = "robust"
    NOT_ROBUST = "not_robust"
    UNDECIDED = "undecided"


def _check_kappa_alpha(kappa: float, alpha: float) -> None:
    if not 0.0 < kappa < 1.0:
        raise ValueError(f"kappa must lie in (0, 1), got {kappa}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")


def fixed_test(k: int, n: int, kappa: float, alpha: float) -> Outcome:
    """Fixed-sample test from k successes among n i.i.d. samples.

    ROBUST iff cp_lower(k, n, alpha) > 1 - kappa; NOT_ROBUST iff cp_upper(k, n, alpha) < 1 - kappa;
    else UNDECIDED.  Guarantee: each error is controlled at alpha over the sampling -- if
    p < 1 - kappa then P(ROBUST) <= alpha, and if p >= 1 - kappa then P(NOT_ROBUST) <= alpha.
    """
    _check_kappa_alpha(kappa, alpha)
    target = 1.0 - kappa
    if cp_lower(k, n, alpha) > target:
        return Outcome.ROBUST
    if cp_upper(k, n, alpha) < target:
        return Outcome.NOT_ROBUST
    return Outcome.UNDECIDED


def _first_true(pred: Callable[[int], bool], lo: int, hi: int) -> int:
    """Smallest k in [lo, hi] with pred(k) for a predicate monotone False -> True; hi + 1 if none."""
    if not pred(hi):
        return hi + 1
    while lo < hi:
        mid = (lo + hi) // 2
        if pred(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


class GroupSequentialRule:
    """A stopping rule with pre-planned looks; subclasses define the per-look rejection regions."""

    kappa: float
    looks: list[int]

    def _robust(self, k: int, n: int) -> bool:
        raise NotImplementedError

    def _not_robust(self, k: int, n: int) -> bool:
        raise NotImplementedError

    @property
    def n_max(self) -> int:
        return self.looks[-1]

    def decide(self, k: int, n: int) -> Outcome | None:
        """Decision after k successes in the first n samples; n must be one of ``self.looks``.

        Returns None to continue sampling; UNDECIDED only at the last look.
        """
        if n not in self.looks:
            raise ValueError(f"{n} is not a planned look {self.looks}")
        if self._robust(k, n):
            return Outcome.ROBUST
        if self._not_robust(k, n):
            return Outcome.NOT_ROBUST
        if n == self.looks[-1]:
            return Outcome.UNDECIDED
        return None

    def critical_counts(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-look thresholds (k_robust, k_not_robust), int64 arrays aligned with ``looks``.

        At look j, ``decide`` says ROBUST iff k >= k_robust[j] (n_j + 1 if never) and NOT_ROBUST iff
        k <= k_not_robust[j] (-1 if never); used for vectorised simulation of the rule.
        """
        k_rob = [_first_true(lambda k, n=n: self._robust(k, n), 0, n) for n in self.looks]
        k_not = [_first_true(lambda k, n=n: not self._not_robust(k, n), 0, n) - 1 for n in self.looks]
        return np.asarray(k_rob, dtype=np.int64), np.asarray(k_not, dtype=np.int64)


class SequentialTest(GroupSequentialRule):
    """Group-sequential test of p >= 1 - kappa with unequal alpha-spending over pre-planned looks.

    Levels: the first look gets alpha_1 = ``first_look_share`` * alpha, every later look
    alpha_k = (1 - ``first_look_share``) * alpha / (K - 1) (an alpha-spending plan fixed before any sample
    is drawn, in the spirit of Lan & DeMets, 1983).  Looks: n_1 = smallest n with
    cp_lower(n, n, alpha_1) > 1 - kappa (a run without failures certifies at the first look), then
    n_{j+1} = max(n_j + 1, ceil(growth * n_j)), the last one truncated to ``n_max``.  If n_1 >= n_max
    there is a single look at n_max with the full level alpha (the fixed test).  At look n_j with k
    successes: ROBUST iff cp_lower(k, n_j, alpha_j) > 1 - kappa, NOT_ROBUST iff cp_upper(k, n_j, alpha_j)
    < 1 - kappa (exact one-sided Clopper-Pearson bounds, ``scipy.stats.beta``), UNDECIDED if neither holds
    at the last look.

    Why the first look is close to the floor: certifying from n samples without failure needs
    alpha_1**(1/n) > 1 - kappa, i.e. n > ln(alpha_1) / ln(1 - kappa) = ln(alpha) / ln(1 - kappa) +
    ln(share) / ln(1 - kappa); for kappa = alpha = 0.01 the floor (the fixed test's, share 1) is 459 samples,
    and share 0.9 needs 469 (2% more), where equal Bonferroni spending over two looks needs 528.

    Guarantee: for i.i.d. samples with success probability p, under optional stopping at the looks,
    P(ROBUST) <= sum_k alpha_k <= alpha if p < 1 - kappa (the false certification) and
    P(NOT_ROBUST) <= sum_k alpha_k <= alpha if p >= 1 - kappa (union bound over the looks: each look's
    Clopper-Pearson bound errs with probability at most alpha_k, whatever the earlier looks did).
    """

    def __init__(self, kappa: float, alpha: float, n_max: int, growth: float = 2.0,
                 first_look_share: float = 0.9) -> None:
        _check_kappa_alpha(kappa, alpha)
        if not growth > 1.0:
            raise ValueError(f"growth must exceed 1, got {growth}")
        if not 0.0 < first_look_share < 1.0:
            raise ValueError(f"first_look_share must lie in (0, 1), got {first_look_share}")
        self.kappa = float(kappa)
        self.alpha = float(alpha)
        self.growth = float(growth)
        self.first_look_share = float(first_look_share)
        target = 1.0 - self.kappa
        n1 = self._first_look(self.alpha * self.first_look_share, target)
        if n1 >= n_max:
            if not perfect_run_lower(n_max, self.alpha) > target:
                raise ValueError(
                    f"n_max={n_max} is too small: even an all-success run of {n_max} samples cannot "
                    f"certify kappa={kappa} at level {alpha:.3g}"
                )
            self.looks = [int(n_max)]
            self.levels = [self.alpha]
            return
        looks = [n1]
        while looks[-1] < n_max:
            looks.append(min(n_max, max(looks[-1] + 1, math.ceil(looks[-1] * self.growth))))
        first = self.alpha * self.first_look_share
        later = (self.alpha - first) / (len(looks) - 1)
        while max(sum([first] + [later] * (len(looks) - 1)), math.fsum([first] + [later] * (len(looks) - 1))) \
                > self.alpha:  # floating-point rounding must not overspend alpha
            later = math.nextafter(later, 0.0)
        self.looks = looks
        self.levels = [first] + [later] * (len(looks) - 1)

    @staticmethod
    def floor(kappa: float, alpha: float) -> int:
        """Smallest n at which ANY valid level-alpha test can certify: the first n with alpha**(1/n) > 1 - kappa.

        With n samples and no failure, the likelihood of the data under p = 1 - kappa is (1 - kappa)**n;
        a test that certifies it with error at most alpha at p = 1 - kappa needs (1 - kappa)**n < alpha.
        """
        _check_kappa_alpha(kappa, alpha)
        return SequentialTest._first_look(alpha, 1.0 - kappa)

    @staticmethod
    def _first_look(level: float, target: float) -> int:
        # cp_lower(n, n, level) = level**(1/n) > target  <=>  n > log(level) / log(target)
        n = max(1, math.floor(math.log(level) / math.log(target)) + 1)
        while cp_lower(n, n, level) <= target:
            n += 1
        while n > 1 and cp_lower(n - 1, n - 1, level) > target:
            n -= 1
        return n

    def _level(self, n: int) -> float:
        return self.levels[self.looks.index(n)]

    def _robust(self, k: int, n: int) -> bool:
        return bool(cp_lower(k, n, self._level(n)) > 1.0 - self.kappa)

    def _not_robust(self, k: int, n: int) -> bool:
        return bool(cp_upper(k, n, self._level(n)) < 1.0 - self.kappa)

    def __repr__(self) -> str:
        return (
            f"SequentialTest(kappa={self.kappa}, alpha={self.alpha}, n_max={self.n_max}, "
            f"growth={self.growth}, first_look_share={self.first_look_share}, looks={self.looks})"
        )


class NaiveSequentialTest(GroupSequentialRule):
    """Exact one-sided binomial tests at the FULL level alpha after every ``step`` samples.

    Does NOT control the error: repeated testing inflates it (about 6% false certifications at a
    nominal 1% for p = 1 - kappa = 0.99, alpha = 0.01, a look every 100 samples up to 10**4).
    Kept to measure that inflation (the claims check and ``benchmarks/sequential_samples.py``), never to
    certify.
    """

    def __init__(self, kappa: float, alpha: float, n_max: int, step: int = 1) -> None:
        _check_kappa_alpha(kappa, alpha)
        self.kappa = float(kappa)
        self.alpha = float(alpha)
        self.looks = list(range(step, n_max + 1, step))
        if not self.looks:
            raise ValueError("need n_max >= step")

    def _robust(self, k: int, n: int) -> bool:
        # = binomtest(k, n, 1 - kappa, alternative="greater").pvalue
        from scipy import stats

        return bool(stats.binom.sf(k - 1, n, 1.0 - self.kappa) <= self.alpha)

    def _not_robust(self, k: int, n: int) -> bool:
        # = binomtest(k, n, 1 - kappa, alternative="less").pvalue
        from scipy import stats

        return bool(stats.binom.cdf(k, n, 1.0 - self.kappa) <= self.alpha)


def run_sequential(draw: Callable[[int], int], test: GroupSequentialRule) -> tuple[Outcome, int]:
    """Drive ``test``: ``draw(m)`` must return the number of successes among m NEW i.i.d. samples.

    Samples up to each planned look in turn and stops at the first decision.  Returns
    (outcome, samples_used); the guarantee is that of ``test``.
    """
    for n, k in _cumulative(draw, test.looks):
        outcome = test.decide(k, n)
        if outcome is not None:
            return outcome, n
    raise AssertionError("unreachable: the last look always decides")


def _cumulative(draw: Callable[[int], int], looks: Sequence[int]) -> Iterator[tuple[int, int]]:
    """Yield (n, cumulative successes) at each look, drawing only the samples new since the last one."""
    k = 0
    n = 0
    for look in looks:
        m = look - n
        s = int(draw(m))
        if not 0 <= s <= m:
            raise ValueError(f"draw({m}) returned {s} successes")
        k += s
        n = look
        yield n, k


def run_sequential_many(draw: Callable[[int], int], tests: Sequence[GroupSequentialRule]) -> dict[int, int]:
    """Drive several designs (e.g. one per kappa) on ONE stream of i.i.d. samples.

    ``draw(m)`` returns the successes among m NEW samples.  Samples are drawn up to the union of the
    designs' looks, in increasing order, until every design has decided; the result maps every look
    reached to the cumulative number of successes there.  :func:`replay_sequential` recovers each design's
    (outcome, samples used) from it.

    Guarantee: each design's replayed decision is exactly the one :func:`run_sequential` returns on the
    same stream -- a design's decision depends only on the counts at its own looks up to its own stopping
    look, so the samples drawn beyond it for the other designs cannot change it -- hence each design keeps
    its own error guarantee.  The guarantee is per design: a statement about all designs at once needs a
    union bound (level alpha / number of designs each).
    """
    if not tests:
        raise ValueError("need at least one design")
    looks = sorted({n for t in tests for n in t.looks})
    pending = list(tests)
    counts: dict[int, int] = {}
    for n, k in _cumulative(draw, looks):
        counts[n] = k
        pending = [t for t in pending if not (n in t.looks and t.decide(k, n) is not None)]
        if not pending:
            return counts
    raise AssertionError("unreachable: every design decides at its last look")


def replay_sequential(counts: Mapping[int, int], test: GroupSequentialRule) -> tuple[Outcome, int, int]:
    """(outcome, samples_used, successes) of ``test`` from cumulative success counts at looks.

    ``counts`` maps sample sizes to cumulative successes of one stream (as returned by
    :func:`run_sequential_many`); it must contain every look of ``test`` up to its stopping look, else
    ``ValueError`` (the record does not allow replaying this design).
    """
    for look in test.looks:
        if look not in counts:
            raise ValueError(f"no count recorded at look {look} of {test!r}")
        k = int(counts[look])
        outcome = test.decide(k, look)
        if outcome is not None:
            return outcome, look, k
    raise AssertionError("unreachable: the last look always decides")
