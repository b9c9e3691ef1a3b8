"""Semantic checks of the ``certify`` config section (run by :func:`tradeoff.config.check_config`).

The schema checks types and ranges; these checks reject settings that are valid numbers but can never
certify anything, with one line naming the key.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ..config import ConfigError, register_check
from .bounds import min_samples_for_radius, perfect_run_lower


def min_samples_for_mixed_radius(alpha: float, alpha_mix: float) -> int | None:
    """Smallest n for which a perfect run (every draw in one class) gives the mixed classifier a positive
    Theorem 2 radius at error level ``alpha`` and mixing weight ``alpha_mix``; None if no n does
    (``alpha_mix`` ≤ 1/2).

    A perfect run gives p_y_lower = (alpha/2)^(1/n) and p_other_upper = 1 − p_y_lower (for any number of
    classes), and the radius is positive iff p_y_lower > 1/(2 alpha_mix), i.e.
    n > log(alpha/2) / log(1/(2 alpha_mix)).  Any other run has a smaller radius, so with fewer samples
    the mixed certificate abstains on every input.
    """
    if not alpha_mix > 0.5:
        return None

    def positive(n: int) -> bool:
        # Theorem 2's radius is positive iff a·q > a·(1 − q) + 1 − a (Phi^{-1} is increasing), i.e.
        # q > 1/(2a); the closed form keeps config checks free of scipy (tests compare with the radius)
        q = float(perfect_run_lower(n, alpha / 2.0))
        return alpha_mix * q > alpha_mix * (1.0 - q) + 1.0 - alpha_mix

    n = max(1, math.floor(math.log(alpha / 2.0) / math.log(1.0 / (2.0 * alpha_mix))) + 1)
    while not positive(n):  # guard the closed form against rounding
        n += 1
    while n > 1 and positive(n - 1):
        n -= 1
    return n


@register_check
def check_certify(config: Mapping[str, Any]) -> None:
    """Reject a ``certify`` section whose sample size cannot give any certificate at its error level."""
    section = config.get("certify")
    if not section:
        return
    alpha, n = float(section["alpha"]), int(section["n"])
    need = min_samples_for_radius(alpha)
    if n < need:
        raise ConfigError(
            f"config error at certify.n: n={n} samples can never certify a radius > 0 at alpha={alpha:g} "
            f"(even if every draw agrees, the Clopper-Pearson lower bound stays <= 1/2); use n >= {need}"
        )
    for a in section.get("mix_alphas", []):
        need_mix = min_samples_for_mixed_radius(alpha, float(a))
        if need_mix is None or n < need_mix:
            fix = "use weights > 0.5" if need_mix is None else f"use n >= {need_mix} or a larger weight"
            raise ConfigError(
                f"config error at certify.mix_alphas: mixing weight {a:g} can never be certified with "
                f"n={n} at alpha={alpha:g} (a perfect run gives no positive radius); {fix}"
            )
    standard = section.get("mix_standard")
    if standard is not None and standard not in config.get("models", {}):
        raise ConfigError(f"config error at certify.mix_standard: '{standard}' is not a model in models")
