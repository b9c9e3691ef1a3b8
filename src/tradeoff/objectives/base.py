"""Standard, PGD adversarial (Madry et al.), TRADES (Zhang et al.) and Gaussian-augmentation objectives."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..attacks.pgd import Threat, pgd

Objective = Callable[[nn.Module, torch.Tensor, torch.Tensor], tuple[torch.Tensor, dict[str, float]]]
REGISTRY: dict[str, Callable[[dict[str, Any], Threat], Objective]] = {}


def register(name: str) -> Callable[[Callable[[dict[str, Any], Threat], Objective]], Callable[..., Objective]]:
    """Class/function decorator adding an objective factory to the registry under ``name``."""

    def deco(factory: Callable[[dict[str, Any], Threat], Objective]) -> Callable[..., Objective]:
        REGISTRY[name] = factory
        return factory

    return deco


def step_size(params: dict[str, Any], threat: Threat, steps: int) -> float:
    """Absolute step: ``step_size`` if given, else ``step_rel × eps`` (default 2.5·ε/steps, Madry's rule)."""
    if params.get("step_size") is not None:
        return float(params["step_size"])
    if params.get("step_rel") is not None:
        return float(params["step_rel"]) * threat.eps
    return 2.5 * threat.eps / max(steps, 1)


def in_eval_mode(model: nn.Module, fn: Callable[[], torch.Tensor]) -> torch.Tensor:
    """Run ``fn`` with the model in eval mode (as the reference TRADES code does for its inner attack) and its
    parameters frozen: the inner attack's backward passes compute input gradients only, and its result carries
    no graph to the parameters. Both are restored afterwards, also when ``fn`` raises."""
    was_training = model.training
    trainable = [p for p in model.parameters() if p.requires_grad]
    model.eval()
    for p in trainable:
        p.requires_grad_(False)
    try:
        return fn()
    finally:
        for p in trainable:
            p.requires_grad_(True)
        model.train(was_training)


@register("standard")
def standard(params: dict[str, Any], threat: Threat) -> Objective:
    """Cross-entropy on clean inputs."""

    def objective(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        return loss, {"loss": loss.item(), "acc": (logits.argmax(1) == y).float().mean().item()}

    return objective


@register("pgd_at")
def pgd_at(params: dict[str, Any], threat: Threat) -> Objective:
    """Madry et al.: min_θ E[max_{‖δ‖≤ε} CE(f(x+δ), y)], inner max by PGD from a uniform random start."""
    steps = int(params.get("steps", 7))
    alpha = step_size(params, threat, steps)

    def objective(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        x_adv = in_eval_mode(model, lambda: pgd(lambda z: F.cross_entropy(model(z), y, reduction="none"), x,
                                               threat, steps=steps, step_size=alpha))
        logits = model(x_adv)
        loss = F.cross_entropy(logits, y)
        return loss, {"loss": loss.item(), "adv_acc": (logits.argmax(1) == y).float().mean().item()}

    return objective


def trades_kl(logits_adv: torch.Tensor, probs_clean: torch.Tensor) -> torch.Tensor:
    """Per-sample KL(p_clean ‖ p_adv), summed over classes (the reference code's convention)."""
    return F.kl_div(F.log_softmax(logits_adv, dim=1), probs_clean, reduction="none").sum(1)


def trades_adversary(model: nn.Module, x: torch.Tensor, threat: Threat, steps: int, alpha: float) -> torch.Tensor:
    """TRADES' inner maximization: start at x + 0.001·N(0, I), ascend KL(σ(f(x)) ‖ σ(f(x')))."""
    with torch.no_grad():
        p_clean = F.softmax(model(x), dim=1)
    return pgd(lambda z: trades_kl(model(z), p_clean), x, threat, steps=steps, step_size=alpha, init_std=0.001)


@register("trades")
def trades(params: dict[str, Any], threat: Threat) -> Objective:
    """Zhang et al.: CE(f(x), y) + β · mean_batch KL(σ(f(x)) ‖ σ(f(x'))), x' from :func:`trades_adversary`."""
    steps = int(params.get("steps", 10))
    alpha = step_size(params, threat, steps)
    beta = float(params.get("beta", 6.0))

    def objective(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        x_adv = in_eval_mode(model, lambda: trades_adversary(model, x, threat, steps, alpha))
        logits = model(x)
        natural = F.cross_entropy(logits, y)
        robust = trades_kl(model(x_adv), F.softmax(logits, dim=1)).mean()
        loss = natural + beta * robust
        return loss, {"loss": loss.item(), "natural": natural.item(), "kl": robust.item(),
                      "acc": (logits.argmax(1) == y).float().mean().item()}

    return objective


@register("gauss_aug")
def gauss_aug(params: dict[str, Any], threat: Threat) -> Objective:
    """Cohen et al.'s training for smoothing: CE on x + N(0, σ²I) (no clipping, as in the reference)."""
    sigma = float(params["sigma"])

    def objective(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        logits = model(x + sigma * torch.randn_like(x))
        loss = F.cross_entropy(logits, y)
        return loss, {"loss": loss.item(), "noisy_acc": (logits.argmax(1) == y).float().mean().item()}

    return objective
