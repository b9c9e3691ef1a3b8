"""Fitting the mixing network on the calibration split (Bai et al. 2024, adaptive smoothing): the composite
loss on clean and randomized adaptive adversarial inputs, and the ``mixing-fit`` job. The attacks use the one
PGD loop of :mod:`tradeoff.attacks.pgd` and the adaptive objective of :mod:`tradeoff.attacks.adaptive`."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..attacks.adaptive import adaptive_objective
from ..attacks.pgd import Threat, pgd
from ..classifiers import load_classifier, load_spec
from ..data import Splits
from ..data import load as load_splits
from ..fingerprint import fingerprint
from ..io import provenance, save_torch, write_json
from ..train import TrainConfig, train
from .model import MixedClassifier, MixingNetwork, MixOutput, NetworkOptions, network_options_dict
from .spec import relative_path, resolve_temperatures, spec_digest

log = logging.getLogger("tradeoff")


# ----------------------------------------------------------------------------------------------------------
# Losses and attacks on the composite (Bai et al. 2024, adaptive smoothing)
# ----------------------------------------------------------------------------------------------------------


def class_loss(out: torch.Tensor, y: torch.Tensor, mode: str) -> torch.Tensor:
    """Per-sample cross-entropy of the mixture (NLL of the log-probabilities in prob mode)."""
    if mode == "prob":
        return F.nll_loss(out, y, reduction="none")
    return F.cross_entropy(out, y, reduction="none")


@dataclass
class FitAttack:
    """Randomized training adversary of Bai et al. (2024) (scaled to small data): per-sample ε' = ε·U(eps_lo, eps_hi),
    w ~ U(0, w_max), momentum ~ U(0, momentum_max), step = step_factor·ε'/steps; per run
    steps = max(1, round(χ²(steps))). Per batch one untargeted run (CE) and ``targets`` targeted runs
    (targeted DLR towards the composite's 2nd, 3rd, … most likely classes, as AutoAttack's APGD-T), each
    with its own draw of the randomization."""

    steps: int = 10
    eps_lo: float = 0.4
    eps_hi: float = 1.1
    w_max: float = 0.4
    momentum_max: float = 0.9
    step_factor: float = 5.0
    targets: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.targets, bool) or int(self.targets) != self.targets or self.targets < 0:
            raise ValueError(f"targets must be a non-negative integer, got {self.targets!r}")
        self.targets = int(self.targets)


def randomized_adversary(model: MixedClassifier, x: torch.Tensor, y: torch.Tensor, threat: Threat,
                         cfg: FitAttack, target: torch.Tensor | None = None) -> torch.Tensor:
    """Adversarial inputs against the whole composite (mixing network included) for fitting it: one
    randomized run maximizing ``(1−w)·CE + w·BCE(γ, 1)``, or with ``target`` (class per sample)
    ``(1−w)·DLR_t + w·BCE(γ, 1)`` towards that class.

    Randomness comes from torch's global generator (seeded per epoch by the training loop). Guarantee:
    each returned point lies within its own budget ``ε'_i`` of ``x_i`` and inside the input bounds.
    """
    n, dev = x.shape[0], x.device
    eps = threat.eps * (cfg.eps_lo + (cfg.eps_hi - cfg.eps_lo) * torch.rand(n, device=dev))
    w = cfg.w_max * torch.rand(n, device=dev)
    momentum = cfg.momentum_max * torch.rand(n, device=dev)
    steps = max(1, round(float(torch.distributions.Chi2(float(cfg.steps)).sample())))
    step = cfg.step_factor * eps / steps
    return pgd(adaptive_objective(model, y, w, target=target), x, threat, steps=steps, step_size=step, eps=eps,
               momentum=momentum)


@torch.no_grad()
def attack_targets(model: nn.Module, x: torch.Tensor, y: torch.Tensor, k: int) -> torch.Tensor:
    """The ``k`` most likely classes other than the label under ``model(x)`` (one forward), shape [B, k].

    Column ``j`` is the (j+2)-th most likely class when ``x`` is classified correctly (APGD-T's targets);
    when the top class is wrong the label is skipped, so a target never equals ``y``.
    """
    out = model(x)
    n, c = out.shape
    if not 0 <= k <= c - 1:
        raise ValueError(f"{k} targets need at least {k + 1} classes, the model has {c}")
    order = out.argsort(dim=1, descending=True)
    others = order[order != y[:, None]].view(n, c - 1)  # each row holds y exactly once
    return others[:, :k]


def fit_adversaries(model: MixedClassifier, x: torch.Tensor, y: torch.Tensor, threat: Threat,
                    cfg: FitAttack) -> list[torch.Tensor]:
    """The adversarial groups of one fitting batch: the untargeted randomized run, then ``cfg.targets``
    targeted runs, run ``j`` towards column ``j`` of :func:`attack_targets` (ranked on the clean ``x``).

    Call it with the composite in eval mode (:func:`fit_objective` does). Each group has ``x``'s shape and
    lies within its points' own budgets ``ε'`` and the input bounds. With ``targets = 0`` it draws exactly
    the random numbers of :func:`randomized_adversary` alone.
    """
    groups = [randomized_adversary(model, x, y, threat, cfg)]
    if cfg.targets > 0:
        targets = attack_targets(model, x, y, cfg.targets)
        groups += [randomized_adversary(model, x, y, threat, cfg, target=targets[:, j])
                   for j in range(cfg.targets)]
    return groups


@dataclass
class CompositeLoss:
    """``ℓ = c_bce·BCE(γ, s) + c_ce·CE + c_prod·BCE·CE`` per sample (the composite loss of Bai et al. 2024),
    averaged per group:

    ``loss = ½·(scale_clean·mean_{s=0} ℓ + scale_adv·mean_{s=1} ℓ)``

    (an empty group contributes 0). The clean term keeps its weight however many adversarial points a
    batch has; with as many adversarial as clean points it is the mean of ``scale·ℓ`` over the whole batch.
    """

    c_bce: float = 1.0
    c_ce: float = 0.5
    c_prod: float = 0.1
    scale_clean: float = 2.0
    scale_adv: float = 1.0

    def __call__(self, res: MixOutput, y: torch.Tensor, s: torch.Tensor, mode: str) -> torch.Tensor:
        bce = F.binary_cross_entropy_with_logits(res.gamma, s, reduction="none")
        ce = class_loss(res.out, y, mode)
        per_sample = self.c_bce * bce + self.c_ce * ce + self.c_prod * bce * ce
        adv = s > 0.5
        total = s.numel()
        n_adv = int(adv.sum())
        n_clean = total - n_adv
        # Weight scale_g·N/(2·n_g) per point of group g, then the mean over all N points. The factor
        # N/(2·n_g) is exactly 1.0 for equal groups: then this is bit for bit the mean of scale·ℓ.
        w_adv = self.scale_adv * (total / (2 * max(n_adv, 1)))
        w_clean = self.scale_clean * (total / (2 * max(n_clean, 1)))
        scale = torch.where(adv, torch.full_like(s, w_adv), torch.full_like(s, w_clean))
        return (scale * per_sample).mean()


def fit_objective(threat: Threat, attack: FitAttack, loss: CompositeLoss):
    """Objective for the training loop: clean batch (s = 0) + the adversarial groups of
    :func:`fit_adversaries` (s = 1; untargeted, then ``attack.targets`` targeted ones), all in one forward
    pass so that the batch statistics of the γ normalization see every group. The metrics ``alpha_adv`` and
    ``acc_adv`` are over all adversarial points."""

    def objective(model: MixedClassifier, x: torch.Tensor,
                  y: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        model.eval()
        try:
            groups = fit_adversaries(model, x, y, threat, attack)
        finally:
            model.train()
        n = x.shape[0]
        xx = torch.cat([x, *groups])
        yy = y.repeat(1 + len(groups))
        s = torch.cat([torch.zeros(n), torch.ones(n * len(groups))]).to(x.device)
        res = model.forward_all(xx)
        total = loss(res, yy, s, model.mode)
        correct = (res.out.argmax(1) == yy).float()
        return total, {"loss": total.item(), "alpha_clean": res.alpha[:n].mean().item(),
                       "alpha_adv": res.alpha[n:].mean().item(), "acc_clean": correct[:n].mean().item(),
                       "acc_adv": correct[n:].mean().item()}

    return objective


# ----------------------------------------------------------------------------------------------------------
# Fitting the mixing network on the calibration split (Bai et al. 2024, adaptive smoothing)
# ----------------------------------------------------------------------------------------------------------


def fit_mixing_network(g: nn.Module, h: nn.Module, splits: Splits, threat: Threat, *, fit: Mapping[str, Any],
                       network: Mapping[str, Any], temp_g: float, temp_h: float, name: str,
                       threat_spec: Mapping[str, Any], bases: Mapping[str, str], checkpoint: str | Path, seed: int,
                       device: torch.device, progress: bool = True
                       ) -> tuple[MixingNetwork, list[dict[str, float]], dict[str, Any]]:
    """Fit a :class:`MixingNetwork` (options ``network``) over the frozen ``g`` and ``h`` on the calibration
    split with :func:`fit_objective` (``fit``: the training loop's keys plus ``loss`` for
    :class:`CompositeLoss` and ``attack`` for :class:`FitAttack`).

    Returns (the network on the CPU, the per-epoch history with calibration accuracy and mean α, the run's
    config). The network is initialised from ``seed``; training resumes from ``checkpoint`` only if it was
    made by the same run config (``bases``: the base models' checksums; the data's checksum is added).
    """
    fit = dict(fit)
    loss = CompositeLoss(**fit.pop("loss", {}))
    attack = FitAttack(**fit.pop("attack", {}))
    cfg = TrainConfig.from_mapping({"optimizer": "adamw", **fit, "seed": seed})
    options = NetworkOptions.from_mapping(network)
    torch.manual_seed(seed)
    net = MixingNetwork(g.feature_channels, h.feature_channels, options)
    model = MixedClassifier(g, h, net, "prob", temp_g, temp_h).to(device)
    run_config = {
        "name": name, "network": network_options_dict(options), "fit": vars(cfg), "loss": vars(loss),
        "attack": vars(attack), "threat": dict(threat_spec), "temp_g": temp_g, "temp_h": temp_h,
        "accurate_sha256": bases["accurate_sha256"], "robust_sha256": bases["robust_sha256"],
        "data_sha256": splits.meta["sha256"],
    }
    x_cal, y_cal = splits.x("calib"), splits.y("calib")

    @torch.no_grad()
    def monitor(m: nn.Module) -> dict[str, float]:
        res = m.forward_all(x_cal.to(device))
        return {"calib_acc": float((res.out.argmax(1).cpu() == y_cal).float().mean()),
                "calib_alpha": float(res.alpha.mean())}

    logging.getLogger("tradeoff").info("fitting the mixing network (%d parameters) on %d calibration points",
                                       sum(p.numel() for p in net.parameters()), x_cal.shape[0])
    history = train(model, fit_objective(threat, attack, loss), x_cal, y_cal, cfg, checkpoint,
                    fingerprint(run_config), device, evaluate=monitor, progress=progress)
    return net.cpu(), history, run_config


def fit_mixnet_classifier(data: str | Path, accurate: str | Path, robust: str | Path, out: str | Path, *,
                          threat: Mapping[str, Any], fit: Mapping[str, Any], network: Mapping[str, Any], name: str,
                          checkpoint: str | Path, seed: int, device: torch.device, temp_g: float = 1.0,
                          temp_h: float = 1.0, temperatures: str | Path | None = None,
                          progress: bool = True) -> dict[str, Any]:
    """The ``mixing-fit`` stage: :func:`fit_mixing_network` over the base models ``accurate`` and ``robust`` on
    the calibration split of ``data`` at ``threat`` (``{norm, eps}``), with the temperatures of
    :func:`~tradeoff.mixing.spec.resolve_temperatures`; writes the classifier JSON ``out`` (kind ``mixnet``,
    paths relative to it) and the network's weights next to it (``.pt``). Returns the JSON written."""
    temp_g, temp_h = resolve_temperatures(temperatures, temp_g, temp_h, accurate=accurate, robust=robust)
    splits = load_splits(data)
    bases = {"accurate_sha256": load_spec(accurate)["sha256"], "robust_sha256": load_spec(robust)["sha256"]}
    net, history, run_config = fit_mixing_network(
        load_classifier(accurate, device), load_classifier(robust, device), splits,
        Threat(str(threat["norm"]), float(threat["eps"]), splits.bounds), fit=fit, network=network, temp_g=temp_g,
        temp_h=temp_h, name=name, threat_spec=threat, bases=bases, checkpoint=checkpoint, seed=seed, device=device,
        progress=progress)
    digest = save_torch(net.state_dict(), Path(out).with_suffix(".pt"))
    body = {"kind": "mixnet", "name": name, "dataset": splits.name, "num_classes": splits.num_classes,
            "accurate": relative_path(accurate, out), "robust": relative_path(robust, out), "mode": "prob",
            "temp_g": temp_g, "temp_h": temp_h, "network": run_config["network"], "weights_sha256": digest}
    body["sha256"] = spec_digest({**body, **bases})
    spec = {**body, **bases, "history": history, **provenance(run_config, seed)}
    write_json(out, spec)
    return spec
