"""The mixed classifiers (Bai, Anderson, Sojoudi 2024): the fixed-α mixture of an accurate model ``g`` and a
robust model ``h`` in probability or logit space, the mixing network that computes a per-input ``α(x)`` from
intermediate features of both frozen base models (adaptive smoothing, Bai et al. 2024), and the classifier
kinds ``mix`` and ``mixnet`` that load them from their JSON descriptions.

* ``mode="prob"``:  ``log((1−α)·σ(T_g·g(x)) + α·σ(T_h·h(x)))`` — a vector of log-probabilities;
* ``mode="logit"``: ``(1−α)·T_g·g(x) + α·T_h·h(x)`` — the logit mixture of the ablation.

The mixed model is a plain differentiable module: AutoAttack and the PGD core attack it end to end, through
the mixing network.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..classifiers import load_classifier, register_kind
from ..io import ArtifactError, load_torch
from ..models import WideBlock
from .spec import MODES

log = logging.getLogger("tradeoff")


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
# The mixing network (adaptive smoothing, Bai et al. 2024)
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

    The head is MixingNetV4 of Bai et al. (2024, adaptive smoothing) scaled down:
    ``z = Stage0(F1) + Conv1×1(F2)`` with ``F1``/``F2`` the channel-concatenated first/second feature maps of
    ``g`` and ``h``, one more stride-2 stage, BN-ReLU, global average pooling and a bias-free linear map to a
    scalar. Guarantees: in eval mode the returned
    ``α`` lies in ``[alpha_min, alpha_max]``; in train mode in ``[0, 1]``.
    """

    def __init__(self, channels_g: Sequence[int], channels_h: Sequence[int], options: NetworkOptions):
        super().__init__()
        self.options = options
        w = int(options.width)
        in1, in2 = int(channels_g[0]) + int(channels_h[0]), int(channels_g[1]) + int(channels_h[1])
        self.stage0 = nn.Sequential(WideBlock(in1, w, 2), WideBlock(w, w, 1))
        self.project = nn.Conv2d(in2, w, 1, bias=False)
        self.stage1 = nn.Sequential(WideBlock(w, w, 2), WideBlock(w, w, 1))
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
    """``h_α`` of Bai et al. (2023, mixing classifiers) (``mode="prob"``) or the logit mixture
    (``mode="logit"``) of frozen ``g`` and ``h``.

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
# Classifier descriptions (kinds "mix" and "mixnet")
# ----------------------------------------------------------------------------------------------------------


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
