"""Training objectives, pluggable into the one training loop (:mod:`tradeoff.train`).

An objective is a callable ``objective(model, x, y) -> (loss, stats)`` where ``loss`` is a scalar to
minimize and ``stats`` a dict of floats logged per epoch. :func:`build_objective` constructs one by name
from its config section and the threat model.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..attacks.pgd import Threat
from . import (
    base,  # noqa: F401  (registration side effects)
    era,  # noqa: F401  (registration side effects)
    variance,  # noqa: F401  (registration side effects)
)
from .base import REGISTRY, Objective, register  # noqa: F401


def build_objective(name: str, params: Mapping[str, Any], threat: Threat) -> Objective:
    """Instantiate objective ``name`` (``standard``, ``pgd_at``, ``trades``, ``gauss_aug``, ``era``,
    ``variance``) with its hyper-parameters ``params`` under ``threat``."""
    if name not in REGISTRY:
        raise ValueError(f"unknown training objective '{name}' (known: {', '.join(sorted(REGISTRY))})")
    factory: Callable[..., Objective] = REGISTRY[name]
    return factory(dict(params), threat)
