"""ERA: training that makes wrong predictions non-robust (Merkli et al., "Just Avoid Robust Inaccuracy").

The loss is the one the authors' code computes (``loss/revadv.py``), which the paper's Equation 4 states
in other notation::

    ŷ      = argmax f(x)                                  (eval mode)
    x̂      = PGD(f, x, label=ŷ, ε)                        (untargeted, against the model's own prediction)
    t      = top-1 class of f(x̂) other than ŷ
    w(x)   = 1 − softmax(f(x))_y   (soft)   |   1[ŷ ≠ y]   (hard)
    L_abst = w(x) · CE(f(x̂), t)                           (push likely-wrong points to be NON-robust)
    L_TR   = CE(f(x), y) + β_T · KL(σ(f(x)) ‖ σ(f(x̂)))     (the KL averaged over classes, as that code does)
    L_ERA  = mean_batch[L_abst + β · L_TR]

It is written here because no library ships it; the attack is the package's one PGD loop and the KL is
TRADES' (``objectives.base.trades_kl``).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..attacks.pgd import Threat, pgd
from .base import Objective, register, step_size, trades_kl

WEIGHTS = ("soft", "hard")
KL_REDUCTIONS = ("mean", "sum")


def other_top_class(logits: torch.Tensor, exclude: torch.Tensor) -> torch.Tensor:
    """Per row, the argmax of ``logits`` over the classes other than ``exclude`` (never equal to it)."""
    masked = logits.detach().scatter(1, exclude[:, None], float("-inf"))
    return masked.argmax(1)


def own_prediction_adversary(model: nn.Module, x: torch.Tensor, own: torch.Tensor, threat: Threat,
                             steps: int, alpha: float) -> torch.Tensor:
    """PGD from a uniform random start maximizing CE(f(x'), own): the attack that tries to change the
    model's own prediction ``own`` (not the label). Returns points of the threat's ball around ``x``."""
    return pgd(lambda z: F.cross_entropy(model(z), own, reduction="none"), x, threat, steps=steps,
               step_size=alpha)


def era_loss(logits: torch.Tensor, logits_adv: torch.Tensor, y: torch.Tensor, own: torch.Tensor, *,
             beta: float, beta_trades: float, weight: str = "soft", kl_reduction: str = "mean"
             ) -> tuple[torch.Tensor, dict[str, float]]:
    """L_ERA from the clean logits f(x), the logits at the own-prediction adversary f(x̂), labels ``y``
    and clean predictions ``own`` (= ŷ). Gradients flow through f(x), f(x̂) and the soft weight w(x).

    ``kl_reduction='mean'`` averages the KL over classes (the ERA code's convention: its β_T is the
    original TRADES β divided by the number of classes); ``'sum'`` sums it as TRADES' own code does.
    """
    if weight not in WEIGHTS:
        raise ValueError(f"weight must be one of {WEIGHTS}, got {weight!r}")
    if kl_reduction not in KL_REDUCTIONS:
        raise ValueError(f"kl_reduction must be one of {KL_REDUCTIONS}, got {kl_reduction!r}")
    probs = F.softmax(logits, dim=1)
    if weight == "soft":
        w = 1.0 - probs.gather(1, y[:, None]).squeeze(1)
    else:
        w = (own != y).to(logits.dtype)
    target = other_top_class(logits_adv, own)
    abstain = w * F.cross_entropy(logits_adv, target, reduction="none")
    kl = trades_kl(logits_adv, probs)
    if kl_reduction == "mean":
        kl = kl / logits.shape[1]
    natural = F.cross_entropy(logits, y, reduction="none")
    loss = (abstain + beta * (natural + beta_trades * kl)).mean()
    stats = {
        "loss": loss.item(), "abstain": abstain.mean().item(), "natural": natural.mean().item(),
        "kl": kl.mean().item(), "acc": (own == y).float().mean().item(),
        "adv_flip": (logits_adv.argmax(1) != own).float().mean().item(),
    }
    return loss, stats


@register("era")
def era(params: dict[str, Any], threat: Threat) -> Objective:
    """The ERA objective. Parameters: ``steps`` (PGD steps, default 10), ``step_rel`` (step as a fraction
    of ε, default 0.25), ``beta`` (weight of the TRADES term, default 1), ``beta_trades`` (β_T, default 6),
    ``weight`` (``soft`` | ``hard``), ``kl_reduction`` (``mean`` | ``sum``, default ``mean``)."""
    steps = int(params.get("steps", 10))
    alpha = step_size({"step_rel": 0.25, **params}, threat, steps)
    beta = float(params.get("beta", 1.0))
    beta_trades = float(params.get("beta_trades", 6.0))
    weight = str(params.get("weight", "soft"))
    kl_reduction = str(params.get("kl_reduction", "mean"))
    if weight not in WEIGHTS or kl_reduction not in KL_REDUCTIONS:
        raise ValueError(f"era: weight must be one of {WEIGHTS} and kl_reduction one of {KL_REDUCTIONS}")
    if beta < 0 or beta_trades < 0:
        raise ValueError("era: beta and beta_trades must be non-negative")

    def objective(model: nn.Module, x: torch.Tensor, y: torch.Tensor
                  ) -> tuple[torch.Tensor, dict[str, float]]:
        # The reference code runs every forward pass of this loss (ŷ, the attack, f(x), f(x̂)) in eval mode
        # and only the optimizer step in train mode; gradients still flow through f(x) and f(x̂).
        was_training = model.training
        model.eval()
        try:
            logits = model(x)
            own = logits.detach().argmax(1)
            x_adv = own_prediction_adversary(model, x, own, threat, steps, alpha)
            logits_adv = model(x_adv)
        finally:
            model.train(was_training)
        return era_loss(logits, logits_adv, y, own, beta=beta, beta_trades=beta_trades, weight=weight,
                        kl_reduction=kl_reduction)

    return objective
