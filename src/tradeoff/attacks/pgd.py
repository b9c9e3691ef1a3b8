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

import torch
import torch.nn.functional as F

from ..threat import Threat

Objective = Callable[[torch.Tensor], torch.Tensor]
"""Maps a batch of inputs to a per-sample value [B] that the attack maximizes."""


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
    indexed: bool = False,
) -> torch.Tensor:
    """Maximize ``objective`` over ``B(x, eps) ∩ bounds`` by projected (sign / normalized) gradient ascent.

    Guarantee: every returned point lies in the threat's ball around ``x`` (per-sample ``eps`` if given)
    and inside ``threat.bounds``. With a ``success`` test (e.g. misclassified) the returned point of a sample
    is the first iterate, of any step of any restart, for which ``success`` held: a sample broken once stays
    broken (best-iterate semantics, as in AutoAttack; Croce & Hein 2020, Sec. 3); a broken sample is frozen
    and later restarts run on the samples not yet broken only. Otherwise it is the final iterate of the
    restart with the largest objective (the last iterate for one restart).

    Cost: at most ``restarts × steps`` gradient evaluations of ``objective`` per sample; with ``success``
    also one forward evaluation per restart at its final iterate (the iterates before are judged on the
    forward pass of their gradient step, which ``success`` may reuse). Without ``success`` and with one
    restart no extra pass is made. ``indexed=True`` says that ``objective`` and ``success`` take
    ``(z, rows)`` with ``rows`` the indices of ``z``'s samples in ``x``: then broken samples are dropped from
    the computation (the attack's cost falls on the surviving samples); otherwise they are frozen in place.

    ``step_size`` is absolute (a scalar or per-sample tensor); ``schedule`` is ``constant`` or ``cosine``
    (step decays to 0 following half a cosine). ``init_std`` replaces the uniform random start by
    ``N(0, init_std²)`` noise (TRADES' start). ``momentum`` (scalar or per-sample, in [0,1)) averages
    normalized gradients as in MI-FGSM.
    """
    if steps < 0 or restarts < 1:
        raise ValueError("steps must be ≥ 0 and restarts ≥ 1")
    x = x.detach()
    n = x.shape[0]
    e_all = _per_sample(threat.eps if eps is None else eps, x)
    alpha_all = _per_sample(step_size, x).expand(n, *([1] * (x.ndim - 1)))
    mom_all = _per_sample(momentum, x).expand(n, *([1] * (x.ndim - 1)))
    best = x.clone()
    best_val = torch.full((n,), -math.inf, device=x.device)
    best_ok = torch.zeros(n, dtype=torch.bool, device=x.device)

    def value_of(z: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        return objective(z, rows) if indexed else objective(z)  # type: ignore[call-arg]

    def ok_of(z: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        assert success is not None
        return (success(z, rows) if indexed else success(z)).to(torch.bool)  # type: ignore[call-arg]

    for _ in range(restarts):
        rows = torch.nonzero(~best_ok).flatten() if indexed else torch.arange(n, device=x.device)
        if len(rows) == 0:
            break
        x_r, e, alpha, mom = x[rows], e_all[rows], alpha_all[rows], mom_all[rows]
        if init_std is not None:
            delta = init_std * torch.randn(x_r.shape, generator=generator, device=x.device, dtype=x.dtype)
        elif rand_init:
            delta = random_start(x_r, threat.norm, e, generator)
        else:
            delta = torch.zeros_like(x_r)
        delta = _clip(x_r, project(delta, threat.norm, e), threat.bounds)
        velocity = torch.zeros_like(x_r)
        for t in range(steps):
            delta.requires_grad_(True)
            z = x_r + delta
            value = value_of(z, rows)
            (grad,) = torch.autograd.grad(value.sum(), delta)
            grad, delta = grad.detach(), delta.detach()
            if success is not None:
                with torch.no_grad():
                    ok = ok_of(z, rows) & ~best_ok[rows]  # the iterate this step starts from
                if bool(ok.any()):
                    best[rows[ok]] = z.detach()[ok]
                    best_ok[rows[ok]] = True
                    if indexed:  # drop the broken samples from the rest of this restart
                        keep = ~ok
                        rows, x_r, delta, grad = rows[keep], x_r[keep], delta[keep], grad[keep]
                        velocity, e, alpha, mom = velocity[keep], e[keep], alpha[keep], mom[keep]
                        if len(rows) == 0:
                            break
            if threat.norm == "Linf":
                direction = grad.sign()
                if torch.any(mom > 0):
                    velocity = mom * velocity + grad / grad.abs().flatten(1).sum(1).clamp_min(1e-12).view_as(mom)
                    direction = velocity.sign()
            else:
                g = grad / _norm2(grad)
                velocity = mom * velocity + g
                direction = velocity / _norm2(velocity)
            if success is not None and not indexed:
                direction = direction * (~best_ok[rows]).view(-1, *([1] * (x.ndim - 1))).to(direction.dtype)
            factor = 0.5 * (1 + math.cos(math.pi * t / steps)) if schedule == "cosine" else 1.0
            with torch.no_grad():
                delta = project(delta + factor * alpha * direction, threat.norm, e)
                delta = _clip(x_r, delta, threat.bounds)
        if len(rows) == 0:
            if bool(best_ok.all()):
                break
            continue
        candidate = x_r + delta.detach()
        if success is None and restarts == 1:  # the only candidate: no forward pass is needed to choose it
            best[rows] = candidate
            return best
        with torch.no_grad():
            val = value_of(candidate, rows).detach()
            ok = ok_of(candidate, rows) if success is not None else torch.zeros_like(best_ok[rows])
            take = (~best_ok[rows]) & (ok | (val > best_val[rows]))
            best[rows[take]] = candidate[take]
            best_val[rows[take]] = val[take]
            best_ok[rows[ok]] = True
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
    """Carlini & Wagner's (2017, Eq. 6, κ = 0) logit margin ``max_{j≠y} z_j − z_y`` per sample
    (positive ⇔ misclassified)."""
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
    towards: torch.Tensor | None = None,
) -> torch.Tensor:
    """Untargeted (or targeted towards ``y``) PGD on a classifier's logits with a named loss.

    Untargeted: maximize loss(model(x'), y) and count misclassification as success. Targeted:
    minimize it (maximize −loss) and count ``argmax == y`` as success. ``towards`` (a class per sample)
    runs an untargeted attack pulled towards that class: maximize ``z_t − z_y`` (the logit margin towards
    ``t``; Carlini & Wagner 2017, Eq. 6 with κ = 0; APGD-T's direction, Croce & Hein 2020) and count any
    misclassification as success.

    Guarantee (best iterate): a returned point is misclassified (resp. classified as ``y`` when targeted)
    whenever any iterate of any restart was; broken points are dropped from later steps and restarts.
    """
    fn = LOSSES[loss]
    sign = -1.0 if targeted else 1.0
    # The success test reuses the logits of the forward pass that computed the same iterate's gradient, and
    # the objective and success test at a restart's final point share one no-grad forward: a restart costs
    # steps × (fwd + bwd) + 1 fwd.
    last: dict[str, torch.Tensor] = {}

    def logits_of(z: torch.Tensor) -> torch.Tensor:
        if last.get("z") is not z:
            out = model(z)
            last.update(z=z, out=out.detach())
            return out
        return last["out"] if not torch.is_grad_enabled() else model(z)

    def objective(z: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        logits = logits_of(z)
        if towards is not None:
            yy, tt = y[rows], towards[rows]
            return logits.gather(1, tt[:, None]).squeeze(1) - logits.gather(1, yy[:, None]).squeeze(1)
        return sign * fn(logits, y[rows])

    def success(z: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        pred = logits_of(z).argmax(1)
        return pred == y[rows] if targeted else pred != y[rows]

    return pgd(objective, x, threat, steps=steps, step_size=step_size, restarts=restarts,
               schedule=schedule, success=success, generator=generator, indexed=True)
