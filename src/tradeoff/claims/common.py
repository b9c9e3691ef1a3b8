"""What every paper's claims share: the context they read and the paired comparison pooled over seeds."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .options import ClaimOptions
from .records import Records, aligned
from .stats import Evidence, paired_difference, pooled_bootstrap

Pair = tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class Context:
    """The records, the summary's closed forms, the options and the dataset's name of one run."""

    recs: Records
    summary: pd.DataFrame | None
    opts: ClaimOptions

    @property
    def dataset(self) -> str:
        return self.opts.dataset or self.recs.dataset()

    def compare(self, load: Callable[[int], Pair | None], capacity: Callable[[int], int] | None = None
                ) -> tuple[Evidence | None, dict[int, Pair]]:
        """mean(a) − mean(b) pooled over the seeds where ``load(seed)`` finds both outcome arrays.

        ``capacity(seed)``: how many points could differ at all (the design's limit); summed over the seeds.
        """
        pairs = self.recs.per_seed(load)
        if not pairs:
            return None, {}
        cap = sum(capacity(s) for s in pairs) if capacity else None
        o = self.opts
        return paired_difference(list(pairs.values()), o.seed, o.resamples, o.confidence, cap), pairs

    def bootstrap(self, statistics: list[Callable[[np.ndarray], np.ndarray]], n: int) -> Evidence:
        o = self.opts
        return pooled_bootstrap(statistics, n, o.seed, o.resamples, o.confidence)


def means(pairs: dict[int, Pair]) -> tuple[float, float]:
    """The means of a and of b over the seeds and the points."""
    return (float(np.mean([p[0].mean() for p in pairs.values()])),
            float(np.mean([p[1].mean() for p in pairs.values()])))


def load_aligned(*loaders: Callable[[], pd.DataFrame | None]) -> list[pd.DataFrame] | None:
    """The frames of ``loaders`` on their shared points, or None if any is missing."""
    frames = [f() for f in loaders]
    return None if any(f is None for f in frames) else aligned(*frames)
