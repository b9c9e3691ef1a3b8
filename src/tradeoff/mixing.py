"""Mixing classifiers (Bai, Anderson, Sojoudi) and the learned mixing network of adaptive smoothing.

:class:`MixedClassifier` combines an accurate model ``g`` and a robust model ``h``:

* ``mode="prob"``:  ``log((1−α)·σ(T_g·g(x)) + α·σ(T_h·h(x)))`` — a vector of log-probabilities;
* ``mode="logit"``: ``(1−α)·T_g·g(x) + α·T_h·h(x)`` — the logit mixture of the ablation (§1.3).

``α`` is either a constant or a :class:`MixingNetwork`, which computes a per-input ``α(x)`` from
intermediate features of both frozen base models (§2.1). The mixed model is a plain differentiable module:
AutoAttack and the PGD core attack it end to end, through the mixing network.

The mixing network, its fitting objective (composite loss of §2.3 on clean and randomized adaptive
adversarial inputs, §2.2) and the adaptive evaluation attack (§2.4) are written here because no library
implements them; attacks use the one PGD loop of :mod:`tradeoff.attacks.pgd`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .attacks.pgd import LOSSES, Threat, dlr_targeted_loss, pgd
from .classifiers import load_classifier, register_kind
from .io import ArtifactError, load_torch
from .models import _WideBlock

MODES = ("prob", "logit")


# ----------------------------------------------------------------------------------------------------------
# Fixed-α mixture
# ----------------------------------------------------------------------------------------------------------


def mix_outputs(logits_g: torch.Tensor, logits_h: torch.Tensor, alpha: float | torch.Tensor, mode: str,
                temp_g: float = 1.0, temp_h: float = 1.0) -> torch.Tensor:
    """Mix two models' logits with weight ``alpha`` (a float or a per-sample tensor [B]).

    ``prob``: returns ``log((1−α)σ(T_g g) + ασ(T_h h))``, computed as a log-sum-exp of log-probabilities so
    it stays finite where a probability underflows; every row satisfies ``logsumexp(row) = 0`` up to
    rounding. For ``α = 0`` (``1``) the result is exactly ``log_softmax(T_g g)`` (``log_softmax(T_h h)``).
    ``logit``: returns ``(1−α)·T_g·g + α·T_h·h`` (exactly ``T_g·g`` at ``α = 0`` and ``T_h·h`` at ``α = 1``).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if not torch.is_tensor(alpha):
        a = float(alpha)
        if not 0.0 <= a <= 1.0:
            raise ValueError(f"alpha must lie in [0, 1], got {a}")
        if a in (0.0, 1.0):  # one model alone, exactly
            logits, temp = (logits_g, temp_g) if a == 0.0 else (logits_h, temp_h)
            return temp * logits if mode == "logit" else F.log_softmax(temp * logits, dim=1)
        a = torch.tensor(a, dtype=logits_g.dtype, device=logits_g.device)
    else:
        a = alpha.reshape(-1, 1).to(logits_g.dtype)
    if mode == "logit":
        return (1.0 - a) * (temp_g * logits_g) + a * (temp_h * logits_h)
    # A learned α may round to 0 or 1 in float32 (sigmoid saturation): keep its logs finite so that
    # gradients stay defined.
    a = a.clamp(1e-7, 1.0 - 1e-7)
    log_g = F.log_softmax(temp_g * logits_g, dim=1) + torch.log1p(-a)
    log_h = F.log_softmax(temp_h * logits_h, dim=1) + torch.log(a)
    return torch.logaddexp(log_g, log_h)


class MixOutput(NamedTuple):
    """Output of the mixed model, the mixing weight per sample and its logit (``γ``; None for fixed α)."""

    out: torch.Tensor
    alpha: torch.Tensor
    gamma: torch.Tensor | None


# ----------------------------------------------------------------------------------------------------------
# The mixing network (adaptive smoothing, §2.1)
# ----------------------------------------------------------------------------------------------------------


@dataclass
class NetworkOptions:
    """Architecture and output rescaling of :class:`MixingNetwork` (see config.yaml ``mixing.network``)."""

    width: int = 32                 # channels of the head's pre-activation blocks
    gamma_scale: float = 2.0        # s_γ: γ = BN(γ_raw)·s_γ + b_γ
    gamma_bias_train: float = 0.4   # b_γ while fitting
    gamma_bias_eval: float = 1.0    # b_γ in eval mode
    alpha_min: float = 0.9          # eval: α = alpha_min + (alpha_max − alpha_min)·sigmoid(γ)
    alpha_max: float = 1.0
    clamp_std: float | None = 0.6   # fitting: clamp γ_raw to batch mean ± clamp_std·std (None: off)
    bn_momentum: float = 0.1        # momentum of the BatchNorm on γ_raw

    @classmethod
    def from_mapping(cls, params: Mapping[str, Any]) -> NetworkOptions:
        known = set(cls.__dataclass_fields__)
        unknown = set(params) - known
        if unknown:
            raise ValueError(f"unknown mixing-network options: {', '.join(sorted(unknown))}")
        opts = cls(**dict(params))
        if not 0.0 <= opts.alpha_min < opts.alpha_max <= 1.0:
            raise ValueError("mixing network needs 0 ≤ alpha_min < alpha_max ≤ 1")
        return opts


def _as_map(f: torch.Tensor) -> torch.Tensor:
    """Feature maps as [B, C, H, W] (flat features of an MLP become 1×1 maps)."""
    return f.reshape(f.shape[0], f.shape[1], 1, 1) if f.ndim == 2 else f


class MixingNetwork(nn.Module):
    """``γ_raw`` from both base models' two feature maps, then BN, rescaling, sigmoid and α range.

    The head is MixingNetV4 of §2.1 scaled down: ``z = Stage0(F1) + Conv1×1(F2)`` with ``F1``/``F2`` the
    channel-concatenated first/second feature maps of ``g`` and ``h``, one more stride-2 stage, BN-ReLU,
    global average pooling and a bias-free linear map to a scalar. Guarantees: in eval mode the returned
    ``α`` lies in ``[alpha_min, alpha_max]``; in train mode in ``[0, 1]``.
    """

    def __init__(self, channels_g: Sequence[int], channels_h: Sequence[int], options: NetworkOptions):
        super().__init__()
        self.options = options
        w = int(options.width)
        in1, in2 = int(channels_g[0]) + int(channels_h[0]), int(channels_g[1]) + int(channels_h[1])
        self.stage0 = nn.Sequential(_WideBlock(in1, w, 2), _WideBlock(w, w, 1))
        self.project = nn.Conv2d(in2, w, 1, bias=False)
        self.stage1 = nn.Sequential(_WideBlock(w, w, 2), _WideBlock(w, w, 1))
        self.bn_out = nn.BatchNorm2d(w)
        self.linear = nn.Linear(w, 1, bias=False)
        self.bn_gamma = nn.BatchNorm1d(1, affine=False, momentum=options.bn_momentum)

    def gamma_raw(self, feats_g: Sequence[torch.Tensor], feats_h: Sequence[torch.Tensor]) -> torch.Tensor:
        f1 = torch.cat([_as_map(feats_g[0]), _as_map(feats_h[0])], dim=1)
        f2 = torch.cat([_as_map(feats_g[1]), _as_map(feats_h[1])], dim=1)
        z = self.stage0(f1)
        p = self.project(f2)
        if p.shape[-2:] != z.shape[-2:]:
            p = F.adaptive_avg_pool2d(p, z.shape[-2:])
        z = F.relu(self.bn_out(self.stage1(z + p)))
        return self.linear(torch.flatten(F.adaptive_avg_pool2d(z, 1), 1))  # [B, 1]

    def forward(self, feats_g: Sequence[torch.Tensor], feats_h: Sequence[torch.Tensor]
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(γ, α)``, each of shape [B]."""
        o = self.options
        raw = self.gamma_raw(feats_g, feats_h)
        if self.training and o.clamp_std is not None and raw.shape[0] > 1:
            mean, std = raw.mean().detach(), raw.std().detach()
            raw = torch.clamp(raw, mean - o.clamp_std * std, mean + o.clamp_std * std)
        bias = o.gamma_bias_train if self.training else o.gamma_bias_eval
        gamma = (self.bn_gamma(raw) * o.gamma_scale + bias).squeeze(1)
        alpha = torch.sigmoid(gamma)
        if not self.training:
            alpha = o.alpha_min + (o.alpha_max - o.alpha_min) * alpha
        return gamma, alpha


class MixedClassifier(nn.Module):
    """``h_α`` of §1.1 (``mode="prob"``) or the logit mixture (``mode="logit"``) of frozen ``g`` and ``h``.

    ``alpha`` is a float in [0, 1] or a :class:`MixingNetwork`. ``forward`` returns the mixture only
    (log-probabilities in prob mode); :meth:`forward_all` also returns ``α`` and ``γ``. The base models stay
    in eval mode even when the module is put in train mode (only the mixing network trains).
    """

    def __init__(self, g: nn.Module, h: nn.Module, alpha: float | MixingNetwork, mode: str = "prob",
                 temp_g: float = 1.0, temp_h: float = 1.0):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.g, self.h = g, h
        self.mode, self.temp_g, self.temp_h = mode, float(temp_g), float(temp_h)
        if isinstance(alpha, MixingNetwork):
            self.net: MixingNetwork | None = alpha
            self.alpha = None
        else:
            a = float(alpha)
            if not 0.0 <= a <= 1.0:
                raise ValueError(f"alpha must lie in [0, 1], got {a}")
            self.net, self.alpha = None, a
        for p in list(g.parameters()) + list(h.parameters()):
            p.requires_grad_(False)

    def train(self, mode: bool = True) -> MixedClassifier:
        super().train(mode)
        self.g.eval()
        self.h.eval()
        return self

    def forward_all(self, x: torch.Tensor) -> MixOutput:
        if self.net is None:
            a = float(self.alpha)  # type: ignore[arg-type]
            alpha = torch.full((x.shape[0],), a, device=x.device)
            # α ∈ {0, 1}: the other model does not contribute; skip it (exact, and half the cost).
            lg = self.g(x) if a < 1.0 else None
            lh = self.h(x) if a > 0.0 else None
            ref = lg if lg is not None else lh
            lg = lg if lg is not None else torch.zeros_like(ref)
            lh = lh if lh is not None else torch.zeros_like(ref)
            return MixOutput(mix_outputs(lg, lh, a, self.mode, self.temp_g, self.temp_h), alpha, None)
        lg, fg = self.g.forward_features(x)
        lh, fh = self.h.forward_features(x)
        gamma, alpha = self.net(fg, fh)
        return MixOutput(mix_outputs(lg, lh, alpha, self.mode, self.temp_g, self.temp_h), alpha, gamma)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_all(x).out


# ----------------------------------------------------------------------------------------------------------
# Losses and attacks on the composite (§2.2–2.4)
# ----------------------------------------------------------------------------------------------------------


def class_loss(out: torch.Tensor, y: torch.Tensor, mode: str) -> torch.Tensor:
    """Per-sample cross-entropy of the mixture (NLL of the log-probabilities in prob mode)."""
    if mode == "prob":
        return F.nll_loss(out, y, reduction="none")
    return F.cross_entropy(out, y, reduction="none")


def adaptive_objective(model: MixedClassifier, y: torch.Tensor, w: float | torch.Tensor, loss: str = "ce",
                       target: torch.Tensor | None = None):
    """``z ↦ (1−w)·L(h_α(z), y) + w·BCE(γ(z), 1)`` per sample, ``L`` a loss of :data:`LOSSES` (CE by default),
    or with ``target`` (a class per sample) APGD-T's targeted DLR loss
    (:func:`~tradeoff.attacks.pgd.dlr_targeted_loss`), which pushes the mixture towards that class. Raising
    ``BCE(γ, 1) = softplus(−γ)`` lowers α, i.e. pushes the mixing network towards trusting the accurate,
    non-robust model."""
    if model.net is None:
        raise ValueError("the adaptive objective needs a mixing network")
    fn = LOSSES[loss]  # CE of log-probabilities equals their NLL, so "ce" serves both mixing modes

    def objective(z: torch.Tensor) -> torch.Tensor:
        res = model.forward_all(z)
        term = fn(res.out, y) if target is None else dlr_targeted_loss(res.out, y, target)
        return (1 - w) * term + w * F.softplus(-res.gamma)

    return objective


@dataclass
class FitAttack:
    """Randomized training adversary of §2.2 (scaled to small data): per-sample ε' = ε·U(eps_lo, eps_hi),
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
    """``ℓ = c_bce·BCE(γ, s) + c_ce·CE + c_prod·BCE·CE`` per sample (§2.3), averaged per group:

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


def probability_margin(logits: torch.Tensor, temp: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """``(prediction, μ)``, ``μ = p_top − p_second`` of ``σ(temp·logits)`` (the margin of §1.2), in [0, 1]."""
    p = F.softmax(temp * logits, dim=1)
    top2 = p.topk(2, dim=1)
    return top2.indices[:, 0], top2.values[:, 0] - top2.values[:, 1]


# ----------------------------------------------------------------------------------------------------------
# Classifier descriptions (kinds "mix" and "mixnet")
# ----------------------------------------------------------------------------------------------------------


def spec_digest(obj: Any) -> str:
    """SHA-256 of a JSON-able description (the identity of a composite without weights of its own)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def _base(spec_path: Path, name: str, device: torch.device) -> nn.Module:
    return load_classifier(spec_path.parent / name, device)


@register_kind("mix")
def _load_mix(spec: Mapping[str, Any], spec_path: Path, device: torch.device) -> nn.Module:
    g = _base(spec_path, spec["accurate"], device)
    h = _base(spec_path, spec["robust"], device)
    return MixedClassifier(g, h, float(spec["alpha"]), spec["mode"], spec.get("temp_g", 1.0),
                           spec.get("temp_h", 1.0))


@register_kind("mixnet")
def _load_mixnet(spec: Mapping[str, Any], spec_path: Path, device: torch.device) -> nn.Module:
    g = _base(spec_path, spec["accurate"], device)
    h = _base(spec_path, spec["robust"], device)
    net = MixingNetwork(g.feature_channels, h.feature_channels, NetworkOptions.from_mapping(spec["network"]))
    weights = spec_path.with_suffix(".pt")
    state = load_torch(weights, expected_sha256=spec.get("weights_sha256"))
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        raise ArtifactError(f"{weights}: weights do not fit the mixing network ({exc})") from exc
    return MixedClassifier(g, h, net, spec["mode"], spec.get("temp_g", 1.0), spec.get("temp_h", 1.0))


def network_options_dict(options: NetworkOptions) -> dict[str, Any]:
    return asdict(options)
