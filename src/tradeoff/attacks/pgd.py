"""The one projected-gradient-ascent loop of the package.

Training (PGD-AT, TRADES, ERA, the mixing network's data), evaluation and the adaptive attacks on
composite models all call :func:`pgd`, which maximizes an arbitrary per-sample objective over an ℓ∞ or
ℓ2 ball. It is written here rather than taken from torchattacks because every method needs a
different objective (KL to the clean prediction, CE towards the model's own prediction, CE + w·BCE on
the mixing network's output, …) and per-sample budgets, which torchattacks' fixed-loss classes do not
support.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

Objective = Callable[[torch.Tensor], torch.Tensor]
"""Maps a batch of inputs to a per-sample value [B] that the attack maximizes."""


@dataclass(frozen=True)
class Threat:
    """A perturbation set: ``norm`` ∈ {Linf, L2}, radius ``eps``, and the valid input box (or None)."""

    norm: str
    eps: float
    bounds: tuple[float, float] | None = (0.0, 1.0)

    def __post_init__(self) -> None:
        if self.norm not in ("Linf", "L2"):
            raise ValueError(f"norm must be Linf or L2, got {self.norm!r}")
        if self.eps < 0:
            raise ValueError(f"eps must be non-negative, got {self.eps}")

    def scaled(self, factor: float) -> Threat:
        return Threat(self.norm, self.eps * factor, self.bounds)


def _per_sample(eps: float | torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    e = torch.as_tensor(eps, dtype=x.dtype, device=x.device)
    if e.ndim == 0:
        e = e.expand(x.shape[0])
    return e.view(-1, *([1] * (x.ndim - 1)))


def _norm2(v: torch.Tensor) -> torch.Tensor:
    return v.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *([1] * (v.ndim - 1)))


def project(delta: torch.Tensor, norm: str, eps: torch.Tensor) -> torch.Tensor:
    """Project perturbations onto the ball of (per-sample) radius ``eps``."""
    if norm == "Linf":
        return torch.max(torch.min(delta, eps), -eps)
    return delta * torch.clamp(eps / _norm2(delta), max=1.0)


def random_start(x: torch.Tensor, norm: str, eps: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """A uniformly random point of the ball (ℓ∞: uniform cube; ℓ2: uniform in the ball)."""
    if norm == "Linf":
        u = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        return (2 * u - 1) * eps
    d = x[0].numel()
    direction = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    direction = direction / _norm2(direction)
    radius = torch.rand((x.shape[0],), generator=generator, device=x.device, dtype=x.dtype) ** (1.0 / d)
    return direction * radius.view(-1, *([1] * (x.ndim - 1))) * eps


def pgd(
    objective: Objective,
    x: torch.Tensor,
    threat: Threat,
    *,
    steps: int,
    step_size: float | torch.Tensor,
    restarts: int = 1,
    rand_init: bool = True,
    init_std: float | None = None,
    schedule: str = "constant",
    momentum: float | torch.Tensor = 0.0,
    eps: torch.Tensor | None = None,
    success: Callable[[torch.Tensor], torch.Tensor] | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Maximize ``objective`` over ``B(x, eps) ∩ bounds`` by projected (sign / normalized) gradient ascent.

    Guarantee: every returned point lies in the threat's ball around ``x`` (per-sample ``eps`` if given)
    and inside ``threat.bounds``. Over ``restarts`` runs the returned point per sample is the first one for
    which ``success`` holds (e.g. misclassified), else the one with the largest objective: the
    per-sample worst case found. Cost: ``restarts × steps`` gradient evaluations of ``objective``, plus one
    forward evaluation per restart to choose among them when ``restarts > 1``.

    ``step_size`` is absolute (a scalar or per-sample tensor); ``schedule`` is ``constant`` or ``cosine``
    (step decays to 0 following half a cosine). ``init_std`` replaces the uniform random start by
    ``N(0, init_std²)`` noise (TRADES' start). ``momentum`` (scalar or per-sample, in [0,1)) averages
    normalized gradients as in MI-FGSM.
    """
    if steps < 0 or restarts < 1:
        raise ValueError("steps must be ≥ 0 and restarts ≥ 1")
    x = x.detach()
    e = _per_sample(threat.eps if eps is None else eps, x)
    alpha = _per_sample(step_size, x)
    mom = _per_sample(momentum, x)
    best = x.clone()
    best_val = torch.full((x.shape[0],), -math.inf, device=x.device)
    best_ok = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
    for _ in range(restarts):
        if init_std is not None:
            delta = init_std * torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        elif rand_init:
            delta = random_start(x, threat.norm, e, generator)
        else:
            delta = torch.zeros_like(x)
        delta = _clip(x, project(delta, threat.norm, e), threat.bounds)
        velocity = torch.zeros_like(x)
        for t in range(steps):
            delta.requires_grad_(True)
            value = objective(x + delta)
            (grad,) = torch.autograd.grad(value.sum(), delta)
            grad = grad.detach()
            if threat.norm == "Linf":
                direction = grad.sign()
                if torch.any(mom > 0):
                    velocity = mom * velocity + grad / grad.abs().flatten(1).sum(1).clamp_min(1e-12).view_as(mom)
                    direction = velocity.sign()
            else:
                g = grad / _norm2(grad)
                velocity = mom * velocity + g
                direction = velocity / _norm2(velocity)
            factor = 0.5 * (1 + math.cos(math.pi * t / steps)) if schedule == "cosine" else 1.0
            with torch.no_grad():
                delta = project(delta.detach() + factor * alpha * direction, threat.norm, e)
                delta = _clip(x, delta, threat.bounds)
        if restarts == 1:  # the only candidate: no forward pass is needed to choose it
            return x + delta.detach()
        with torch.no_grad():
            candidate = x + delta.detach()
            val = objective(candidate).detach()
            ok = success(candidate) if success is not None else torch.zeros_like(best_ok)
            take = (~best_ok) & (ok | (val > best_val))
            best[take] = candidate[take]
            best_val = torch.where(take, val, best_val)
            best_ok |= ok
            if bool(best_ok.all()):
                break
    return best


def _clip(x: torch.Tensor, delta: torch.Tensor, bounds: tuple[float, float] | None) -> torch.Tensor:
    if bounds is None:
        return delta
    return (x + delta).clamp(bounds[0], bounds[1]) - x


# ----------------------------------------------------------------------------------------------------------
# Losses and the common attack on a classifier
# ----------------------------------------------------------------------------------------------------------


def dlr_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Croce & Hein's difference-of-logits-ratio loss (untargeted), per sample."""
    sorted_logits, _ = logits.sort(dim=1)
    z_y = logits.gather(1, y[:, None]).squeeze(1)
    top = sorted_logits[:, -1]
    second = sorted_logits[:, -2]
    other = torch.where(top == z_y, second, top)
    denom = (sorted_logits[:, -1] - sorted_logits[:, -3]).clamp_min(1e-12) if logits.shape[1] > 2 else 1.0
    return -(z_y - other) / denom


def dlr_targeted_loss(logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Croce & Hein's targeted difference-of-logits-ratio loss (APGD-T's), per sample:
    ``−(z_y − z_t) / (z_π1 − (z_π3 + z_π4)/2)`` with ``t = target`` and ``z_π1 ≥ z_π2 ≥ …`` the sorted
    logits. Maximizing it pushes ``z_t`` above ``z_y``; it is invariant to shifting and scaling the logits.
    Needs at least 4 classes.
    """
    if logits.shape[1] < 4:
        raise ValueError(f"the targeted DLR loss needs at least 4 classes, got {logits.shape[1]}")
    sorted_logits, _ = logits.sort(dim=1)
    z_y = logits.gather(1, y[:, None]).squeeze(1)
    z_t = logits.gather(1, target[:, None]).squeeze(1)
    denom = (sorted_logits[:, -1] - 0.5 * (sorted_logits[:, -3] + sorted_logits[:, -4])).clamp_min(1e-12)
    return -(z_y - z_t) / denom


def margin_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """CW margin: best other logit minus the logit of y (positive ⇔ misclassified)."""
    z_y = logits.gather(1, y[:, None]).squeeze(1)
    others = logits.scatter(1, y[:, None], -math.inf)
    return others.max(dim=1).values - z_y


LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "ce": lambda logits, y: F.cross_entropy(logits, y, reduction="none"),
    "dlr": dlr_loss,
    "margin": margin_loss,
}


def attack_model(
    model: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    threat: Threat,
    *,
    steps: int,
    step_size: float,
    restarts: int = 1,
    loss: str = "ce",
    targeted: bool = False,
    schedule: str = "constant",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Untargeted (or targeted towards ``y``) PGD on a classifier's logits with a named loss.

    Untargeted: maximize loss(model(x'), y) and count misclassification as success. Targeted:
    minimize it (maximize −loss) and count ``argmax == y`` as success.
    """
    fn = LOSSES[loss]
    sign = -1.0 if targeted else 1.0
    # With several restarts pgd() evaluates the objective and the success test on each restart's final point
    # without gradients: one cached forward serves both (a restart costs steps×(fwd+bwd) + 1 fwd).
    last: dict[str, torch.Tensor] = {}

    def logits_of(z: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled():
            return model(z)
        if last.get("z") is not z:
            last.update(z=z, out=model(z))
        return last["out"]

    def objective(z: torch.Tensor) -> torch.Tensor:
        return sign * fn(logits_of(z), y)

    def success(z: torch.Tensor) -> torch.Tensor:
        pred = logits_of(z).argmax(1)
        return pred == y if targeted else pred != y

    return pgd(objective, x, threat, steps=steps, step_size=step_size, restarts=restarts,
               schedule=schedule, success=success, generator=generator)
