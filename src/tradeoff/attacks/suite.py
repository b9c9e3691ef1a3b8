"""The strong white-box attack of the evaluation: margin-loss PGD with restarts, then targeted margin runs.

Carlini et al. (2019, "On Evaluating Adversarial Robustness", Sec. 4–5) recommend the logit-margin loss
(Carlini & Wagner 2017) over cross-entropy, random restarts, and targeted runs towards each likely class;
AutoAttack's APGD-T (Croce & Hein 2020) runs towards the 2nd..(k+1)-th most likely classes. Every run
here uses the package's one PGD loop with best-iterate semantics and attacks only the points that are
still classified correctly (clean errors and points broken by an earlier run are never attacked again),
so the attack's cost falls on the surviving points.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from .pgd import Threat, attack_model

Model = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class MarginSuite:
    """Parameters of :func:`margin_attack`: ``steps`` PGD steps of ``step_rel``·ε, ``restarts`` random
    starts of the untargeted run on ``loss``, then one run of ``target_restarts`` starts towards each of
    the ``targets`` most likely other classes (of the clean logits)."""

    steps: int = 20
    step_rel: float = 0.125
    restarts: int = 3
    loss: str = "margin"
    targets: int = 0
    target_restarts: int = 1

    @classmethod
    def from_mapping(cls, params: Mapping[str, Any]) -> MarginSuite:
        known = set(cls.__dataclass_fields__)
        unknown = set(params) - known - {"eps_factors", "zero_tol"}
        if unknown:
            raise ValueError(f"unknown margin-attack parameters: {', '.join(sorted(unknown))}")
        suite = cls(**{k: params[k] for k in known if k in params})
        if suite.steps < 1 or suite.restarts < 1 or suite.targets < 0 or suite.target_restarts < 1:
            raise ValueError("steps, restarts and target_restarts must be ≥ 1 and targets ≥ 0")
        return suite


@dataclass
class SuiteResult:
    """Per point: the adversarial input (the clean input where nothing broke it), the prediction there and
    the run that broke it (``"clean"`` when misclassified clean, ``""`` when robust)."""

    x_adv: torch.Tensor
    prediction: torch.Tensor
    broken_by: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """Points broken per run (``clean`` = clean errors)."""
        out: dict[str, int] = {}
        for b in self.broken_by:
            if b:
                out[b] = out.get(b, 0) + 1
        return out


def other_classes(logits: torch.Tensor, y: torch.Tensor, k: int) -> torch.Tensor:
    """The ``k`` classes other than ``y`` with the largest logits, most likely first, shape [B, k].

    Guarantee: no entry equals the sample's ``y``; for a correctly classified point these are the
    2nd..(k+1)-th classes (APGD-T's targets). ``k`` is capped at classes − 1.
    """
    n, c = logits.shape
    k = max(0, min(int(k), c - 1))
    order = logits.argsort(dim=1, descending=True)
    others = order[order != y[:, None]].view(n, c - 1)
    return others[:, :k]


def margin_attack(model: Model, x: torch.Tensor, y: torch.Tensor, threat: Threat, suite: MarginSuite, *,
                  generator: torch.Generator | None = None, batch_size: int = 500) -> SuiteResult:
    """Untargeted margin-loss PGD with restarts, then targeted margin runs, on surviving points only.

    Guarantee: every returned point lies in B(x, ε) ∩ bounds; ``prediction[i] != y[i]`` exactly when the
    point is a clean error or some iterate of some run misclassified it (best iterate), and then
    ``broken_by[i]`` names the first run that did (``margin``, ``margin-t1``, ``margin-t2``, …).
    Deterministic given ``generator``'s seed.
    """
    with torch.no_grad():
        logits = torch.cat([model(x[i:i + batch_size]) for i in range(0, x.shape[0], batch_size)])
    pred = logits.argmax(1)
    best = x.clone()
    broken_by = ["clean" if bool(p != t) else "" for p, t in zip(pred.tolist(), y.tolist(), strict=True)]
    if threat.eps == 0:
        return SuiteResult(best.cpu(), pred.cpu(), broken_by)
    targets = other_classes(logits, y, suite.targets)
    runs: list[tuple[str, int, torch.Tensor | None]] = [("margin", suite.restarts, None)]
    runs += [(f"margin-t{j + 1}", suite.target_restarts, targets[:, j]) for j in range(targets.shape[1])]
    step = suite.step_rel * threat.eps
    for name, restarts, towards in runs:
        alive = torch.nonzero(pred == y).flatten()
        if len(alive) == 0:
            break
        for start in range(0, len(alive), batch_size):
            idx = alive[start:start + batch_size]
            with torch.enable_grad():
                adv = attack_model(model, x[idx], y[idx], threat, steps=suite.steps, step_size=step,
                                   restarts=restarts, loss=suite.loss, generator=generator,
                                   towards=None if towards is None else towards[idx])
            with torch.no_grad():
                p = model(adv).argmax(1)
            hit = p != y[idx]
            best[idx[hit]] = adv[hit]
            pred[idx[hit]] = p[hit]
            for i in idx[hit].tolist():
                broken_by[i] = name
    return SuiteResult(best.cpu(), pred.cpu(), broken_by)

