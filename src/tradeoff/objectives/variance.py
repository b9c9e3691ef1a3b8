"""Variance-minimizing training (Zhang et al., "Towards Certified Probabilistic Robustness with High
Accuracy", arXiv 2309.00879).

For each training input x with label y, draw n perturbations t_1..t_n uniformly from the vicinity
B_p(x, eps) (clipped to the data's value box), compute per-perturbation losses l_1..l_n and minimize

    L(x, y) = mean_j l_j + lam * std_j l_j  (+ clean_weight * CE(h(x), y))

averaged over the batch.  The standard deviation (the square root of the variance, as in the paper) lets
mean and spread combine linearly.  ``l_j`` is CE(h(t_j), y) by default, or KL(softmax h(x) || softmax h(t_j))
(the "variance in divergence" reading of the abstract), which needs the clean CE term to tie the model to
the labels.  No existing library implements this objective, hence the hand-written version here; the
perturbations come from the same uniform ball samplers as the probabilistic certificate
(:mod:`tradeoff.certify.sampling`), so training and certification use one definition of the vicinity.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..attacks.pgd import Threat
from ..certify.sampling import NoiseSampler, ball_sampler
from .base import Objective, register, trades_kl

__all__ = ["mean_std_loss", "vicinity_samples", "variance"]

# Below this variance the square root is replaced by a constant, so that its gradient (1 / (2 std)) never
# becomes infinite or NaN when all n losses of an input coincide (e.g. a saturated model); above it the
# value is exact.
_MIN_VAR = 1e-12


def mean_std_loss(losses: torch.Tensor, lam: float) -> torch.Tensor:
    """Batch mean of ``mean_j l_ij + lam * std_j l_ij`` for per-perturbation losses ``losses`` [B, n].

    The standard deviation is the population one (divisor n, i.e. the square root of the mean squared
    deviation), so for losses (1, 2, 3, 4) and lam = 1 the value is 2.5 + sqrt(1.25).  Needs n >= 2.
    The gradient is finite everywhere (variances below 1e-12 are clamped).
    """
    if losses.ndim != 2 or losses.shape[1] < 2:
        raise ValueError(f"need per-perturbation losses of shape [B, n] with n >= 2, got {tuple(losses.shape)}")
    mean = losses.mean(dim=1)
    var = (losses - mean.unsqueeze(1)).pow(2).mean(dim=1)
    return (mean + lam * var.clamp_min(_MIN_VAR).sqrt()).mean()


def vicinity_samples(
    x: torch.Tensor,
    n: int,
    sampler: NoiseSampler,
    bounds: tuple[float, float] | None,
    generator: torch.Generator,
) -> torch.Tensor:
    """``n`` perturbed copies of each input of the batch ``x`` [B, *shape]: a tensor [B, n, *shape].

    Copy j of input i is x_i + delta_ij with delta_ij i.i.d. uniform on the sampler's ball, then clipped to
    ``bounds`` (if given) exactly as the probabilistic certificate clips its samples.  The noise is drawn
    on ``generator``'s device (the CPU default generator in training) and moved to ``x``'s device.
    """
    b = x.shape[0]
    delta = sampler.sample(tuple(x.shape[1:]), b * n, generator).to(device=x.device, dtype=x.dtype)
    t = x.unsqueeze(1) + delta.view(b, n, *x.shape[1:])
    if bounds is not None:
        t = t.clamp(bounds[0], bounds[1])
    return t


@register("variance")
def variance(params: dict[str, Any], threat: Threat) -> Objective:
    """Zhang et al.'s mean + lam * std objective over n uniform vicinity samples per input.

    params: ``n`` (perturbations per input, >= 2, default 10), ``lam`` (default 1.0), ``eps`` (vicinity
    radius; None = the threat's eps), ``norm`` (Linf | L2; None = the threat's norm), ``loss`` (``ce`` on the
    label, default, or ``kl`` to the clean prediction), ``clean_weight`` (weight of CE on the clean input;
    default 0 for ``ce``, must be > 0 for ``kl``).  Noise is drawn from torch's default generator, which the
    training loop seeds per epoch, so runs are reproducible and resumable.
    """
    n = int(params.get("n", 10))
    lam = float(params.get("lam", 1.0))
    eps = float(threat.eps if params.get("eps") is None else params["eps"])
    norm = str(threat.norm if params.get("norm") is None else params["norm"])
    kind = str(params.get("loss", "ce"))
    clean_weight = float(params.get("clean_weight", 0.0))
    if n < 2:
        raise ValueError(f"variance objective: n must be at least 2 (a standard deviation needs two losses), got {n}")
    if lam < 0 or clean_weight < 0:
        raise ValueError("variance objective: lam and clean_weight must be non-negative")
    if kind not in ("ce", "kl"):
        raise ValueError(f"variance objective: loss must be 'ce' or 'kl', got {kind!r}")
    if kind == "kl" and clean_weight <= 0:
        raise ValueError("variance objective: loss 'kl' needs clean_weight > 0 (nothing else fits the labels)")
    sampler = ball_sampler(eps, norm)
    bounds = threat.bounds

    def objective(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        b = x.shape[0]
        t = vicinity_samples(x, n, sampler, bounds, torch.default_generator)
        logits_t = model(t.flatten(0, 1))  # [B * n, C]
        stats: dict[str, float] = {}
        logits_x = model(x) if (kind == "kl" or clean_weight > 0) else None
        if kind == "ce":
            per = F.cross_entropy(logits_t, y.repeat_interleave(n), reduction="none").view(b, n)
        else:
            p_clean = F.softmax(logits_x, dim=1).repeat_interleave(n, dim=0)
            per = trades_kl(logits_t, p_clean).view(b, n)
        loss = mean_std_loss(per, lam)
        if clean_weight > 0:
            clean = F.cross_entropy(logits_x, y)
            loss = loss + clean_weight * clean
            stats["clean_ce"] = clean.item()
        with torch.no_grad():
            stats.update(loss=loss.item(), mean_l=per.mean().item(), std_l=per.std(dim=1, unbiased=False).mean().item(),
                         vicinity_acc=(logits_t.argmax(1) == y.repeat_interleave(n)).float().mean().item())
        return loss, stats

    return objective
