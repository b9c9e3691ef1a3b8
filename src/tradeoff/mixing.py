"""Mixing classifiers (Bai, Anderson, Sojoudi) and the learned mixing network of adaptive smoothing.

:class:`MixedClassifier` combines an accurate model ``g`` and a robust model ``h``:

* ``mode="prob"``:  ``log((1−α)·σ(T_g·g(x)) + α·σ(T_h·h(x)))`` — a vector of log-probabilities;
* ``mode="logit"``: ``(1−α)·T_g·g(x) + α·T_h·h(x)`` — the logit mixture of the ablation (§1.3).

``α`` is either a constant or a :class:`MixingNetwork`, which computes a per-input ``α(x)`` from
intermediate features of both frozen base models (§2.1). The mixed model is a plain differentiable module:
AutoAttack and the PGD core attack it end to end, through the mixing network.

The inverse temperatures ``T_g`` and ``T_h`` can be chosen on the calibration split by temperature scaling
(Guo et al. 2017): :func:`calibrate_temperatures`.

The mixing network, its fitting objective (composite loss of §2.3 on clean and randomized adaptive
adversarial inputs, §2.2) and the adaptive evaluation attack (§2.4) are written here because no library
implements them; attacks use the one PGD loop of :mod:`tradeoff.attacks.pgd`.

The mixing stage's jobs are functions here too: :func:`write_temperatures`, :func:`fit_mixnet_classifier`
(over :func:`fit_mixing_network`), :func:`adaptive_evaluation` (a resumable per-point job,
:mod:`tradeoff.resume`) and :func:`write_margins` (over :func:`margin_records`); each declares the record
columns and summary rows it makes. The descriptions of fixed-α mixtures need no torch: :mod:`tradeoff.mix_spec`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .attacks.adaptive import CompositeSuite, mixnet_evaluation_attack
from .attacks.pgd import LOSSES, Threat, attack_model, dlr_targeted_loss, pgd
from .classifiers import load_classifier, load_spec, register_kind
from .data import Splits
from .data import load as load_splits
from .evaluate import perturbation_size
from .io import ArtifactError, load_torch, provenance, read_records, save_torch, write_json, write_records
from .mix_spec import MODES, relative_path, resolve_temperatures, spec_digest
from .models import _WideBlock
from .point_records import ADAPTIVE_COLUMNS, ADAPTIVE_METRICS, finish_context  # noqa: F401  (METRICS: re-exported)
from .records import summary_row
from .resume import PointJob, StageOutput, chunk_generator, stage_output
from .train import TrainConfig, fingerprint, train

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
# Temperatures on the calibration split (temperature scaling, Guo et al. 2017)
# ----------------------------------------------------------------------------------------------------------

TEMP_BOUNDS = (1e-2, 1e2)
"""Search interval of the inverse temperature ``T`` (the factor on the logits)."""


@dataclass(frozen=True)
class TemperatureFit:
    """The inverse temperature ``T`` of one model and the calibration NLL of ``σ(z)`` and of ``σ(T·z)``."""

    temp: float
    nll_before: float
    nll_after: float
    n: int


def calibration_nll(logits: torch.Tensor, labels: torch.Tensor, temp: float = 1.0) -> float:
    """Mean negative log-likelihood of ``labels`` under ``σ(temp·logits)`` (computed in float64)."""
    z = logits.detach().to(torch.float64)
    return float(F.cross_entropy(temp * z, labels.to(z.device).long()))


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor,
                    bounds: tuple[float, float] = TEMP_BOUNDS) -> TemperatureFit:
    """Temperature scaling (Guo et al. 2017, Sec. 4.2): the ``T`` minimizing the NLL of ``σ(T·logits)``.

    Guo et al. divide the logits by a temperature; the mixture multiplies them by ``T`` (Bai et al. 2024's
    ``T_g``, ``T_h``), so the returned ``T`` is their ``1/T``. The NLL is convex in ``T`` (a log-sum-exp of
    linear functions minus a linear one), so a bounded 1-D search over ``log T`` (scipy's bounded Brent
    method) finds its minimum within ``bounds``. Guarantees: ``bounds[0] ≤ temp ≤ bounds[1]`` and
    ``nll_after ≤ nll_before`` (the NLL at ``T = 1``; ``T = 1`` is returned if the search does not beat it).
    """
    from scipy.optimize import minimize_scalar

    lo, hi = bounds
    if not 0 < lo <= 1.0 <= hi:
        raise ValueError(f"temperature bounds must satisfy 0 < lo ≤ 1 ≤ hi, got {bounds}")
    if logits.ndim != 2 or logits.shape[0] != labels.shape[0] or logits.shape[0] == 0:
        raise ValueError("fit_temperature needs logits [n, classes] and n labels, n > 0")
    z = logits.detach().to(torch.float64).cpu()
    y = labels.detach().long().cpu()
    before = calibration_nll(z, y, 1.0)
    res = minimize_scalar(lambda s: calibration_nll(z, y, math.exp(s)), bounds=(math.log(lo), math.log(hi)),
                          method="bounded", options={"xatol": 1e-6})
    temp, after = float(math.exp(res.x)), float(res.fun)
    if not after <= before:
        temp, after = 1.0, before
    return TemperatureFit(temp, before, after, int(y.shape[0]))


@torch.no_grad()
def model_logits(model: nn.Module, x: torch.Tensor, batch_size: int = 500,
                 device: torch.device | str = "cpu") -> torch.Tensor:
    """``model``'s logits on ``x`` in batches, on the CPU."""
    return torch.cat([model(x[i:i + batch_size].to(device)).cpu() for i in range(0, x.shape[0], batch_size)])


def calibrate_temperatures(g: nn.Module, h: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 500,
                           device: torch.device | str = "cpu") -> dict[str, TemperatureFit]:
    """``{"g": fit, "h": fit}``: each base model's temperature fitted on ``(x, y)`` (the calibration split)."""
    return {name: fit_temperature(model_logits(m, x, batch_size, device), y) for name, m in (("g", g), ("h", h))}


def write_temperatures(data: str | Path, accurate: str | Path, robust: str | Path, out: str | Path, *,
                       batch_size: int, seed: int, device: torch.device) -> dict[str, Any]:
    """The ``mixing-temperatures`` stage: fit ``T_g`` and ``T_h`` of the base models ``accurate`` and ``robust``
    on the calibration split of ``data`` (:func:`calibrate_temperatures`), log each fit and write ``out``
    (JSON: the temperatures, the NLL before and after, the checksums of both models and of the data, which
    :func:`~tradeoff.mix_spec.resolve_temperatures` checks). Returns the JSON written."""
    splits = load_splits(data)
    g, h = load_classifier(accurate, device), load_classifier(robust, device)
    fits = calibrate_temperatures(g, h, splits.x("calib"), splits.y("calib"), batch_size, device)
    for role, fit in fits.items():
        log.info("T_%s = %.4g: calibration NLL %.4f → %.4f (%d points)", role, fit.temp, fit.nll_before,
                 fit.nll_after, fit.n)
    bases = {"accurate_sha256": load_spec(accurate)["sha256"], "robust_sha256": load_spec(robust)["sha256"],
             "data_sha256": splits.meta["sha256"]}
    body = {
        "temp_g": fits["g"].temp, "temp_h": fits["h"].temp, "split": "calib", "n": fits["g"].n,
        "method": "temperature scaling (Guo et al. 2017): T minimizing the calibration NLL of softmax(T·logits)",
        "bounds": list(TEMP_BOUNDS),
        "nll": {role: {"before": fit.nll_before, "after": fit.nll_after} for role, fit in fits.items()},
        **bases, **provenance({"accurate": str(accurate), "robust": str(robust), **bases}, seed),
    }
    write_json(out, body)
    return body


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


# ----------------------------------------------------------------------------------------------------------
# Fitting the mixing network on the calibration split (§2.2–2.3)
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
    :func:`~tradeoff.mix_spec.resolve_temperatures`; writes the classifier JSON ``out`` (kind ``mixnet``,
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


# ----------------------------------------------------------------------------------------------------------
# Evaluation records of the mixing stage: the adaptive evaluation (§2.4) and the robust model's margins
# ----------------------------------------------------------------------------------------------------------

MARGIN_COLUMNS = ["index", "label", "clean_prediction", "clean_margin", "clean_correct", "adv_prediction",
                  "adv_margin", "adv_correct", "perturbation"]
"""Columns of :func:`margin_records`."""


def adaptive_evaluation(model: MixedClassifier, spec: Mapping[str, Any], splits: Splits, threat: Threat, *,
                        name: str, autoattack: str, params: Mapping[str, Any], suite: Mapping[str, Any],
                        threat_spec: Mapping[str, Any], out: str | Path, seed: int, batch_size: int,
                        device: torch.device, stop_after: int | None = None, shard: int = 0,
                        shards: int | None = None) -> StageOutput:
    """The mixing network's adaptive evaluation, written to ``out`` as a resumable job: per test point the
    worst case of its AutoAttack record (``autoattack``, of the same classifier) and
    :func:`~tradeoff.attacks.adaptive.mixnet_evaluation_attack` (the CE + w·BCE attack over ``params["w"]``
    and the composite suite of ``suite``), with α(x) and γ(x) on the clean and the attacked input.

    Guarantees: ``correct = correct_autoattack · correct_adaptive`` (a clean error stays an error); the chunk
    starting at ``s`` draws from ``chunk_generator(seed, s, bits=32)`` on the CPU, so the records do not
    depend on where a previous run was killed. With ``shards`` (even 1) only shard ``shard``'s chunks are run
    (:class:`~tradeoff.resume.PointJob`). Raises :class:`~tradeoff.io.ArtifactError` if the AutoAttack
    record belongs to another classifier or split.
    """
    aa, aa_meta = read_records(autoattack)
    if aa_meta.get("classifier_sha256") != spec["sha256"]:
        raise ArtifactError(f"{autoattack}: made for another version of the classifier {name}")
    x, y = splits.x("test"), splits.y("test")
    if len(aa) != y.shape[0] or not np.array_equal(aa["label"].to_numpy(), y.numpy()):
        raise ArtifactError(f"{autoattack}: its points are not this test split")
    aa_pred = torch.tensor(aa["prediction"].to_numpy())
    aa_size = torch.tensor(aa["perturbation"].to_numpy(), dtype=torch.float32)
    composite_suite = CompositeSuite.from_mapping(suite)
    ws = params["w"] if isinstance(params["w"], list) else [params["w"]]
    run = {"evaluation": "adaptive", "classifier_sha256": spec["sha256"], "data_sha256": splits.meta.get("sha256"),
           "autoattack_sha256": aa_meta.get("sha256"), "threat": [threat.norm, threat.eps, threat.bounds],
           "params": dict(params), "suite": dict(suite), "seed": seed, "batch_size": batch_size}
    job = PointJob(out, ADAPTIVE_COLUMNS, run, int(y.shape[0]), batch_size, stop_after, shard, shards)
    for chunk in job.chunks():
        idx = chunk.tolist()
        gen = chunk_generator(seed, idx[0], bits=32) if device.type == "cpu" else None
        xb, yb = x[idx].to(device), y[idx].to(device)
        with torch.no_grad():
            clean = model.forward_all(xb)
        alive = (clean.out.argmax(1) == yb) & torch.tensor([bool(aa_pred[i] == y[i]) for i in idx], device=yb.device)
        res = mixnet_evaluation_attack(model, xb, yb, threat, params, composite_suite, alive, generator=gen)
        with torch.no_grad():
            adv = model.forward_all(res.x_adv)
        clean_pred, adv_pred = clean.out.argmax(1).cpu(), adv.out.argmax(1).cpu()
        adv_pred = torch.where(clean_pred == yb.cpu(), adv_pred, clean_pred)  # clean errors stay errors
        size = perturbation_size(xb, res.x_adv, threat.norm).cpu()
        for j, i in enumerate(idx):
            ok_aa, ok_ad = int(aa_pred[i] == y[i]), int(adv_pred[j] == y[i])
            worst = aa_pred[i] if not ok_aa else adv_pred[j]
            k = int(res.broken_by[j])
            job.add({
                "index": i, "label": int(y[i]), "clean_prediction": int(clean_pred[j]),
                "autoattack_prediction": int(aa_pred[i]), "adaptive_prediction": int(adv_pred[j]),
                "prediction": int(worst), "correct": ok_aa * ok_ad, "correct_autoattack": ok_aa,
                "correct_adaptive": ok_ad, "perturbation": float(aa_size[i] if not ok_aa else size[j]),
                "alpha_clean": float(clean.alpha[j]), "alpha_adaptive": float(adv.alpha[j]),
                "gamma_clean": float(clean.gamma[j]), "gamma_adaptive": float(adv.gamma[j]),
                "adaptive_w": float(ws[k]) if k >= 0 and clean_pred[j] == y[i] else "",
                "adaptive_by": res.path[j] if clean_pred[j] == y[i] and ok_ad == 0 else "",
                "standing_before_transfer": int(res.standing_before_transfer[j]),
            })
    meta = {
        "attack": "adaptive", "norm": threat.norm, "eps": threat.eps, "params": dict(params),
        "dataset": splits.name, "classifier": name, "classifier_sha256": spec["sha256"],
        "alpha_range": [spec["network"]["alpha_min"], spec["network"]["alpha_max"]],
        "autoattack_record": str(autoattack), "autoattack_flags": aa_meta.get("flags", {}),
        "autoattack_warnings": aa_meta.get("warnings", []),
        "autoattack_accuracy_by_attack": aa_meta.get("accuracy_by_attack", {}), "suite": dict(suite),
    }  # the rows add adaptive_beats_autoattack and adaptive_by (tradeoff.point_records.finish)
    return stage_output(job, finish_context(
        "mixing-adaptive", dataset=splits.name, name=name, threat=threat, meta=meta,
        config={"attack": "adaptive", "threat": dict(threat_spec), "params": dict(params)}, seed=seed))


def margin_records(model: nn.Module, splits: Splits, threat: Threat, params: Mapping[str, Any], temp: float, *,
                   name: str, classifier_sha256: str | None, threat_spec: Mapping[str, Any], seed: int,
                   batch_size: int, device: torch.device) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(records with :data:`MARGIN_COLUMNS`, metadata with the summary rows) of ``model``'s probability margin
    (:func:`probability_margin` at inverse temperature ``temp``) on the clean test points and on PGD points
    (``params``: steps, step_rel, restarts, loss) of the clean-correct ones; clean errors are not attacked.
    One generator seeded by ``seed`` runs through the batches in order."""
    x, y = splits.x("test"), splits.y("test")
    steps = int(params.get("steps", 20))
    gen = torch.Generator(device="cpu").manual_seed(seed)
    rows: list[dict[str, Any]] = []
    for start in range(0, y.shape[0], batch_size):
        xb, yb = x[start:start + batch_size].to(device), y[start:start + batch_size].to(device)
        with torch.no_grad():
            c_pred, c_margin = probability_margin(model(xb), temp)
        step = float(params.get("step_rel", 2.5 / steps)) * threat.eps
        x_adv = attack_model(model, xb, yb, threat, steps=steps, step_size=step,
                             restarts=int(params.get("restarts", 1)), loss=str(params.get("loss", "ce")),
                             generator=gen if device.type == "cpu" else None)
        keep = (c_pred == yb).view(-1, *([1] * (xb.ndim - 1)))
        x_adv = torch.where(keep, x_adv, xb)  # only clean-correct points are attacked
        with torch.no_grad():
            a_pred, a_margin = probability_margin(model(x_adv), temp)
        size = perturbation_size(xb, x_adv, threat.norm).cpu()
        for j in range(xb.shape[0]):
            rows.append({"index": start + j, "label": int(yb[j]), "clean_prediction": int(c_pred[j]),
                         "clean_margin": float(c_margin[j]), "clean_correct": int(c_pred[j] == yb[j]),
                         "adv_prediction": int(a_pred[j]), "adv_margin": float(a_margin[j]),
                         "adv_correct": int(a_pred[j] == yb[j]), "perturbation": float(size[j])})
    right_adv = [r["adv_margin"] for r in rows if r["adv_correct"]]
    wrong_clean = [r["clean_margin"] for r in rows if not r["clean_correct"]]
    summary = [
        summary_row(splits.name, name, "margin", threat, "mean_margin_correct_attacked",
                    float(np.mean(right_adv)) if right_adv else float("nan"), len(right_adv)),
        summary_row(splits.name, name, "margin", threat, "mean_margin_wrong_clean",
                    float(np.mean(wrong_clean)) if wrong_clean else float("nan"), len(wrong_clean)),
    ]
    meta = {
        "attack": "pgd", "norm": threat.norm, "eps": threat.eps, "params": dict(params), "temp": temp,
        "dataset": splits.name, "classifier": name, "classifier_sha256": classifier_sha256, "summary_rows": summary,
        **provenance({"threat": dict(threat_spec), "params": dict(params), "temp": temp}, seed),
    }
    return rows, meta


def write_margins(data: str | Path, classifier: str | Path, out: str | Path, *, name: str,
                  threat: Mapping[str, Any], params: Mapping[str, Any], seed: int, batch_size: int,
                  device: torch.device, temp: float = 1.0, temperatures: str | Path | None = None
                  ) -> list[dict[str, Any]]:
    """The ``mixing-margins`` stage: :func:`margin_records` of ``classifier`` on the test split of ``data`` at
    ``threat`` (``{norm, eps}``), at inverse temperature ``temp`` or the ``temp_h`` of ``temperatures`` (fitted
    for ``classifier`` as the robust model), written to ``out`` (:data:`MARGIN_COLUMNS`). Returns the summary
    rows (mean margin of the correct-under-attack points, then of the wrong-clean ones)."""
    _, temp = resolve_temperatures(temperatures, temp, temp, robust=classifier)
    splits = load_splits(data)
    rows, meta = margin_records(
        load_classifier(classifier, device), splits, Threat(str(threat["norm"]), float(threat["eps"]), splits.bounds),
        params, temp, name=name, classifier_sha256=load_spec(classifier).get("sha256"), threat_spec=threat,
        seed=seed, batch_size=batch_size, device=device)
    write_records(out, rows, meta, columns=MARGIN_COLUMNS)
    summary = meta["summary_rows"]
    log.info("%s: mean probability margin %.3f on %d correct-under-attack points, %.3f on %d wrong-clean",
             name, summary[0]["value"], summary[0]["n"], summary[1]["value"], summary[1]["n"])
    return summary
