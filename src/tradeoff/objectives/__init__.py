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


class RampedObjective:
    """An objective whose training budget grows linearly from 0 to the threat's ε over the first ``ramp`` share
    of the optimizer steps, then stays at ε (the ε warm-up that lets small networks start adversarial training
    at MNIST's ε = 0.3 instead of sticking at chance; Gowal et al. 2018, Sec. 4, ramp ε the same way).

    The training loop calls :meth:`set_progress` with the share of steps done before each step, so the budget
    depends on the step alone and a resumed run draws the same budgets. Step sizes given relative to ε
    (``step_rel``) shrink with it.
    """

    def __init__(self, factory: Callable[..., Objective], params: dict[str, Any], threat: Threat, ramp: float):
        if not 0 < ramp <= 1:
            raise ValueError(f"eps_ramp must be in (0, 1], got {ramp}")
        self.factory, self.params, self.threat, self.ramp = factory, params, threat, ramp
        self.scale = -1.0
        self.set_progress(0.0)

    def set_progress(self, done: float) -> None:
        """Use the budget of the step that follows ``done`` (share of all steps already taken)."""
        scale = min(1.0, (done + 1e-12) / self.ramp)
        if scale != self.scale:
            self.scale, self.inner = scale, self.factory(dict(self.params), self.threat.scaled(scale))

    def __call__(self, model: Any, x: Any, y: Any) -> Any:
        loss, stats = self.inner(model, x, y)
        return loss, {**stats, "eps": self.threat.eps * self.scale}


def build_objective(name: str, params: Mapping[str, Any], threat: Threat) -> Objective:
    """Instantiate objective ``name`` (``standard``, ``pgd_at``, ``trades``, ``gauss_aug``, ``era``,
    ``variance``) with its hyper-parameters ``params`` under ``threat``; with ``eps_ramp`` > 0 among the
    params, a :class:`RampedObjective`."""
    if name not in REGISTRY:
        raise ValueError(f"unknown training objective '{name}' (known: {', '.join(sorted(REGISTRY))})")
    factory: Callable[..., Objective] = REGISTRY[name]
    params = dict(params)
    ramp = float(params.pop("eps_ramp", 0.0) or 0.0)
    return RampedObjective(factory, params, threat, ramp) if ramp > 0 else factory(params, threat)
