"""The settings of the probabilistic-certification stage and their config check.

Free of torch and scipy (the sequential designs of perfect runs have closed forms), so that validating a
config before any job runs stays fast.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..certify.bounds import perfect_run_lower
from ..config import ConfigError, register_check
from .sequential import SequentialTest

if TYPE_CHECKING:
    from ..attacks.pgd import Threat

__all__ = ["ProbSettings", "check_settings"]


@dataclass(frozen=True)
class ProbSettings:
    """The statistical and sampling settings of the stage (the config's ``probabilistic`` section)."""

    eps: float
    norm: str
    kappa: float
    kappa_sweep: tuple[float, ...]
    alpha: float
    n_max: int
    growth: float = 2.0
    first_look_share: float = 0.9
    clamp: bool = True
    batch_size: int = 1000

    @classmethod
    def from_mapping(cls, section: Mapping[str, Any]) -> ProbSettings:
        return cls(eps=float(section["eps"]), norm=str(section["norm"]), kappa=float(section["kappa"]),
                   kappa_sweep=tuple(float(k) for k in section["kappa_sweep"]), alpha=float(section["alpha"]),
                   n_max=int(section["n_max"]), growth=float(section.get("growth", 2.0)),
                   first_look_share=float(section.get("first_look_share", 0.9)),
                   clamp=bool(section.get("clamp", True)), batch_size=int(section.get("batch_size", 1000)))

    @property
    def kappas(self) -> list[float]:
        """Every kappa a record must allow replaying: the sweep and the summary's kappa."""
        return sorted({*self.kappa_sweep, self.kappa})

    def design(self, kappa: float) -> SequentialTest:
        """The sequential design of ``kappa`` (cached: its critical counts are computed once per design)."""
        return _design(float(kappa), self.alpha, self.n_max, self.growth, self.first_look_share)

    @property
    def threat(self) -> Threat:
        from ..attacks.pgd import Threat

        return Threat("Linf" if self.norm.lower() in ("linf", "inf") else "L2", self.eps)


@functools.lru_cache(maxsize=256)
def _design(kappa: float, alpha: float, n_max: int, growth: float, first_look_share: float) -> SequentialTest:
    return SequentialTest(kappa, alpha, n_max, growth, first_look_share)


def check_settings(settings: ProbSettings) -> None:
    """ValueError (one line) if n_max cannot certify the smallest kappa, even with no failure at all.

    The fixed test certifies an all-success run iff alpha**(1/n_max) > 1 - kappa; the sequential design then
    exists too (with a single look at n_max if its first look, at level first_look_share * alpha, would not
    come before n_max; see :class:`SequentialTest`).
    """
    for kappa in settings.kappas:
        if not perfect_run_lower(settings.n_max, settings.alpha) > 1.0 - kappa:
            need = math.floor(math.log(settings.alpha) / math.log(1.0 - kappa)) + 1
            raise ValueError(f"n_max={settings.n_max} cannot certify kappa={kappa} at alpha={settings.alpha} "
                             f"even if every sample agrees (needs n_max >= {need})")
        settings.design(kappa)


@register_check
def _check_probabilistic_section(config: Mapping[str, Any]) -> None:
    """Config check: the ``probabilistic`` section's n_max must allow certifying every kappa."""
    section = config.get("probabilistic")
    if not section:
        return
    try:
        # the vicinity is each threat's ball; it does not enter this check
        check_settings(ProbSettings.from_mapping({**section, **config["threats"][0]}))
    except ValueError as exc:
        key = next((k for k in ("first_look_share", "growth") if str(exc).startswith(k)), "n_max")
        raise ConfigError(f"config error at probabilistic.{key}: {exc}") from None
