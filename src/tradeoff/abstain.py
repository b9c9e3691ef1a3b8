"""Robustness-indicator abstain and the compositional classifier (Merkli et al., "Just Avoid Robust
Inaccuracy", 2023).

* **Metrics.** A model is *robust* at x when no point of B(x, ε) changes its own prediction ŷ = f(x);
  empirically, when an attack that tries to change ŷ (not the label) fails. Robust accuracy is
  1[ŷ = y]·robust, robust inaccuracy 1[ŷ ≠ y]·robust (wrong but stable: a false sense of safety).
* **Selector.** s(x') = 1 iff the robust model is robust around the runtime input x' (on B(x', ε)),
  found by an attack (:class:`EmpiricalSelector`) or certified by randomized smoothing
  (:class:`CertifiedSelector`).
* **Composition.** F(x) = f_rob(x) where s(x) = 1, f_std(x) elsewhere (:class:`Composite`).
* **The 2ε rule.** A test point x is soundly selected when f_rob is robust on B(x, 2ε): then every
  x' ∈ B(x, ε) is accepted and F(x') = f_rob(x) (:meth:`Composite.sound_selection`).
* **Evaluation.** By joining per-sample records (:func:`compositional_indicators`, the reference code's
  formulas, selector at 2ε) and by an end-to-end adaptive attack that tries both ways of fooling F
  (:func:`~tradeoff.attacks.adaptive.era_adaptive_attack`); a point counts as robust only if both say so.

The selector, the composition and the adaptive attack are the paper's methods and exist in no library,
so they are written here; every attack in this module is the package's one PGD loop
(:func:`tradeoff.attacks.pgd.pgd`) or AutoAttack through ``pyautoattack``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .attacks.autoattack import run_autoattack
from .attacks.pgd import Threat, pgd
from .attacks.suite import MarginSuite, margin_attack
from .certify.cohen import ABSTAIN, Smooth, certify_from_counts
from .certify.sampling import point_generator
from .classifiers import load_classifier, register_kind
from .io import read_json
from .point_records import robustness_metrics as robustness_metrics  # re-exported: the metrics of this module

Model = Callable[[torch.Tensor], torch.Tensor]
log = logging.getLogger("tradeoff")

# ----------------------------------------------------------------------------------------------------------
# Metrics (robust accuracy and inaccuracy: :func:`tradeoff.point_records.robustness_metrics`)
# ----------------------------------------------------------------------------------------------------------


def compositional_indicators(selected: np.ndarray, acc_rob: np.ndarray, rob_rob: np.ndarray,
                             acc_std: np.ndarray, rob_std: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample correctness and robustness of the composition from its parts' records.

    The reference code's formulas (``eval/comp.py``): correct = s·acc_rob + (1−s)·acc_std and
    robust = s·rob_rob + (1−s)·rob_std, with s the selector at the clean input (evaluated at 2ε).
    Their product averaged over the test set is ``comp_rob_acc``. A rejected point counts only the
    standard model's robustness (slightly optimistic: an attacker could also try to get it accepted),
    which is why :func:`~tradeoff.attacks.adaptive.era_adaptive_attack` is run as well.
    """
    s = np.asarray(selected, dtype=bool)
    correct = np.where(s, np.asarray(acc_rob, dtype=bool), np.asarray(acc_std, dtype=bool))
    robust = np.where(s, np.asarray(rob_rob, dtype=bool), np.asarray(rob_std, dtype=bool))
    return correct, robust


# ----------------------------------------------------------------------------------------------------------
# The robustness test: an attack towards changing the model's own prediction
# ----------------------------------------------------------------------------------------------------------


@dataclass
class RobustnessResult:
    """Per sample: the clean prediction, the prediction at the attack's point, the robustness flag (no
    attack changed the prediction), which attack changed it (``""`` if none) and the point itself."""

    clean_prediction: torch.Tensor
    adv_prediction: torch.Tensor
    robust: torch.Tensor
    flipped_by: list[str]
    x_adv: torch.Tensor


@dataclass(frozen=True)
class RobustnessAttack:
    """The attack of the robustness test, towards changing the model's own prediction: PGD on ``loss``
    (``ce`` or the logit ``margin``) with ``steps`` steps of ``step_rel``·radius and ``restarts`` random
    starts, then ``targets`` targeted margin runs towards the next most likely classes (best iterate,
    surviving points only; :func:`~tradeoff.attacks.suite.margin_attack`), then optionally the ``apgd``
    attacks of ``pyautoattack`` (e.g. ``["apgd-ce", "apgd-t"]``) with y = the own prediction."""

    steps: int = 20
    step_rel: float = 0.125
    restarts: int = 1
    apgd: tuple[str, ...] = ()
    apgd_iter: int = 100
    n_target_classes: int = 9
    loss: str = "ce"
    targets: int = 0

    @classmethod
    def from_mapping(cls, params: Mapping[str, Any]) -> RobustnessAttack:
        return cls(steps=int(params.get("steps", 20)), step_rel=float(params.get("step_rel", 0.125)),
                   restarts=int(params.get("restarts", 1)), apgd=tuple(params.get("apgd", ())),
                   apgd_iter=int(params.get("apgd_iter", 100)),
                   n_target_classes=int(params.get("n_target_classes", 9)), loss=str(params.get("loss", "ce")),
                   targets=int(params.get("targets", 0)))


def in_ball(x: torch.Tensor, x_adv: torch.Tensor, threat: Threat, tol: float = 1e-5) -> torch.Tensor:
    """Per sample: ``x_adv`` lies in the threat's ball around ``x`` and inside its bounds (up to ``tol``)."""
    d = (x_adv - x).flatten(1)
    size = d.abs().max(1).values if threat.norm == "Linf" else d.norm(dim=1)
    ok = size <= threat.eps + tol
    if threat.bounds is not None:
        flat = x_adv.flatten(1)
        ok &= (flat.min(1).values >= threat.bounds[0] - tol) & (flat.max(1).values <= threat.bounds[1] + tol)
    return ok


def robustness_test(model: Model, x: torch.Tensor, threat: Threat, attack: RobustnessAttack, *,
                    generator: torch.Generator | None = None, seed: int = 0,
                    device: torch.device | str = "cpu") -> RobustnessResult:
    """Attack ``model`` at every point of ``x`` towards changing its own prediction ŷ = argmax f(x).

    PGD runs first (untargeted, then targeted runs on the points it did not flip); the APGD attacks of
    ``attack.apgd`` then run on the points PGD did not flip, only
    when the threat's bounds are [0, 1] (``pyautoattack`` clips to that box).

    Guarantee: ``robust[i]`` is False exactly when a point of B(x_i, ε) ∩ bounds was found whose
    prediction differs from ŷ_i (that point is ``x_adv[i]``); a False is a proof of non-robustness, a True
    only says that these attacks failed (an upper bound on true robustness).
    """
    x = x.to(device)
    with torch.no_grad():
        own = model(x).argmax(1)
    best = x.clone()
    robust = torch.ones_like(own, dtype=torch.bool)
    flipped_by = [""] * x.shape[0]
    if threat.eps > 0 and attack.steps > 0:
        suite = MarginSuite(steps=attack.steps, step_rel=attack.step_rel, restarts=attack.restarts,
                            loss=attack.loss, targets=attack.targets)
        res = margin_attack(model, x, own, threat, suite, generator=generator, batch_size=max(1, x.shape[0]))
        x_pgd = res.x_adv.to(x.device)
        with torch.no_grad():
            flipped = model(x_pgd).argmax(1) != own
        best[flipped] = x_pgd[flipped]
        robust &= ~flipped
        for i in torch.nonzero(flipped).flatten().tolist():
            flipped_by[i] = res.broken_by[i].replace("margin", "pgd", 1)
    if threat.eps > 0 and attack.apgd and bool(robust.any()) and threat.bounds != (0.0, 1.0):
        # pyautoattack clips every iterate to [0, 1]: on data with other bounds its points leave the ball.
        log.warning("APGD skipped: pyautoattack assumes inputs in [0, 1], the threat's bounds are %s",
                    threat.bounds)
    elif threat.eps > 0 and attack.apgd and bool(robust.any()):
        idx = torch.nonzero(robust).flatten()
        result = run_autoattack(model, x[idx], own[idx], norm=threat.norm, eps=threat.eps, version="custom",
                                attacks=attack.apgd, n_iter=attack.apgd_iter,
                                n_target_classes=attack.n_target_classes, batch_size=max(1, len(idx)),
                                seed=seed, device=device)
        x_aa = result.x_adv.to(device)
        with torch.no_grad():
            flipped = (model(x_aa).argmax(1) != own[idx]) & in_ball(x[idx], x_aa, threat)
        for j in torch.nonzero(flipped).flatten().tolist():
            i = int(idx[j])
            best[i] = x_aa[j]
            robust[i] = False
            flipped_by[i] = "apgd"
    with torch.no_grad():
        adv = model(best).argmax(1)
    return RobustnessResult(own.cpu(), adv.cpu(), robust.cpu(), flipped_by, best.cpu())


# ----------------------------------------------------------------------------------------------------------
# Selectors
# ----------------------------------------------------------------------------------------------------------


@dataclass
class Selection:
    """A selector's decision per input and the branch output to use where it accepts (log-probabilities)."""

    selected: torch.Tensor
    branch_logp: torch.Tensor


class EmpiricalSelector:
    """Accept a runtime input x' iff PGD at radius ``scale``·ε (default ε) fails to change the robust
    model's prediction at x' (the robustness indicator of the reference code).

    The 2ε rule (:meth:`indicator` at ``scale + 1``, i.e. 2ε by default): a clean test point x is
    *soundly selected* when f_rob is robust on B(x, 2ε). Why 2ε: for every x' ∈ B(x, ε) the ball the
    runtime selector tests, B(x', ε), lies inside B(x, 2ε); so f_rob has no prediction change there, the
    selector accepts x' and F(x') = f_rob(x') = f_rob(x) — no ε-perturbation can change the composite's
    output. Robustness of f_rob at ε only is not enough: an attacker moves x to an x' near f_rob's
    boundary, where the selector rejects and the standard model, which is not robust, answers instead
    (tests/test_era.py builds exactly this case). With an exact robustness test the rule is a proof; with
    an attack it holds up to the attack's strength, which
    :func:`~tradeoff.attacks.adaptive.era_adaptive_attack` then probes.

    The first attack run starts at x' itself (no random start), so s is a deterministic function of x';
    further ``restarts`` add random starts from a generator reseeded with ``seed`` on every call.
    """

    def __init__(self, model: Model, threat: Threat, *, scale: float = 1.0, steps: int = 10,
                 step_rel: float = 0.25, restarts: int = 1, seed: int = 0):
        if scale <= 0 or steps < 1 or restarts < 1:
            raise ValueError("scale must be positive, steps and restarts at least 1")
        self.model = model
        self.threat = threat
        self.scale = float(scale)
        self.steps = int(steps)
        self.step_rel = float(step_rel)
        self.restarts = int(restarts)
        self.seed = int(seed)

    def indicator(self, x: torch.Tensor, scale: float) -> torch.Tensor:
        """True where PGD at radius ``scale``·ε does not change the robust model's prediction at ``x``."""
        x = x.detach()
        threat = self.threat.scaled(scale)
        with torch.no_grad():
            own = self.model(x).argmax(1)
        if threat.eps == 0:
            return torch.ones_like(own, dtype=torch.bool)
        keep = torch.ones_like(own, dtype=torch.bool)
        gen = torch.Generator(device=x.device).manual_seed(self.seed)
        with torch.enable_grad():
            for r in range(self.restarts):
                x_adv = pgd(lambda z: F.cross_entropy(self.model(z), own, reduction="none"), x, threat,
                            steps=self.steps, step_size=self.step_rel * threat.eps, rand_init=r > 0,
                            generator=gen)
                with torch.no_grad():
                    keep &= self.model(x_adv).argmax(1) == own
        return keep

    def __call__(self, x: torch.Tensor) -> Selection:
        return Selection(self.indicator(x, self.scale), F.log_softmax(self.model(x), dim=1))


def certified_l2_radius_needed(threat: Threat, scale: float, input_numel: int) -> float:
    """The ℓ2 radius an RS certificate needs so that the robust model is robust on the ``scale``·ε ball.

    ℓ2 threat: scale·ε. ℓ∞ threat: B∞(x, r) ⊂ B2(x, r·√d), so scale·ε·√d (the conversion the reference
    code uses, r∞ = r2/√d).
    """
    radius = scale * threat.eps
    return radius if threat.norm == "L2" else radius * math.sqrt(input_numel)


class CertifiedSelector:
    """Accept x' iff Cohen et al.'s CERTIFY on the robust model smoothed with N(0, σ²I) returns a class
    with ℓ2 radius ≥ the radius of the ``scale``·ε ball (see :func:`certified_l2_radius_needed`).

    The branch output is then the smoothed classifier's (the certified class). The 2ε rule
    (:meth:`indicator` at ``scale + 1``): if the smoothed classifier's radius at x is R(x) ≥ 2ε, then
    for every x' ∈ B(x, ε) its true radius satisfies R(x') ≥ R(x) − ‖x' − x‖ ≥ ε with the class
    unchanged, so the ε-test at x' passes (up to the Monte-Carlo slack of the runtime certificate) and
    F(x') is the class certified at x; each certificate holds with probability ≥ 1 − α. The noise of
    input number i of a call comes from ``point_generator(seed, i)``, so the decision is reproducible.
    """

    def __init__(self, model: Model, num_classes: int, threat: Threat, *, sigma: float, n0: int = 100,
                 n: int = 1000, alpha: float = 0.001, scale: float = 1.0, seed: int = 0,
                 batch_size: int = 1000):
        if n0 < 1 or n < 1 or not 0 < alpha < 1 or scale <= 0:
            raise ValueError("n0 and n must be positive, alpha in (0, 1) and scale positive")
        self.smooth = Smooth(model, num_classes, sigma, batch_size)
        self.threat = threat
        self.scale = float(scale)
        self.n0, self.n, self.alpha, self.seed = int(n0), int(n), float(alpha), int(seed)
        self.num_classes = int(num_classes)

    def certify(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per input: (certified class or −1 = abstain, ℓ2 radius, class frequencies [B, C])."""
        preds, radii, freqs = [], [], []
        for i in range(x.shape[0]):
            gen = point_generator(self.seed, i, 0, device="cpu")
            counts0 = self.smooth.sample_counts(x[i], self.n0, gen)
            counts = self.smooth.sample_counts(x[i], self.n, gen)
            res = certify_from_counts(counts0, counts, self.smooth.sigma, self.alpha)
            preds.append(res.prediction)
            radii.append(res.radius)
            freqs.append(counts / max(1, counts.sum()))
        return (torch.tensor(preds, dtype=torch.long, device=x.device),
                torch.tensor(radii, dtype=torch.float32, device=x.device),
                torch.tensor(np.stack(freqs), dtype=torch.float32, device=x.device))

    def accepts(self, preds: torch.Tensor, radii: torch.Tensor, scale: float, input_numel: int) -> torch.Tensor:
        """Certified (not abstained) with an ℓ2 radius covering the ``scale``·ε ball."""
        return (preds != ABSTAIN) & (radii >= certified_l2_radius_needed(self.threat, scale, input_numel))

    def indicator(self, x: torch.Tensor, scale: float) -> torch.Tensor:
        """True where the certificate covers the ``scale``·ε ball around ``x``."""
        preds, radii, _ = self.certify(x.detach())
        return self.accepts(preds, radii, scale, x[0].numel())

    def __call__(self, x: torch.Tensor) -> Selection:
        preds, radii, freqs = self.certify(x.detach())
        accepted = self.accepts(preds, radii, self.scale, x[0].numel())
        # where accepted, the branch output is the certified class (it can differ from argmax of the
        # estimation counts only when those disagree with the selection counts)
        onehot = F.one_hot(preds.clamp_min(0), self.num_classes).to(freqs.dtype)
        logp = torch.where(accepted[:, None], onehot, freqs).clamp_min(1e-12).log()
        return Selection(accepted, logp)


# ----------------------------------------------------------------------------------------------------------
# The compositional classifier
# ----------------------------------------------------------------------------------------------------------


class Composite(nn.Module):
    """F(x) = branch(x) where the selector accepts x, standard(x) elsewhere; outputs log-probabilities.

    With the default selector (robustness test at ε at the runtime input) a clean point x is provably
    robust for F when :meth:`sound_selection` holds (the 2ε rule), given an exact robustness test.

    Guarantee: argmax F(x) equals the selector's branch prediction (f_rob's, or the certified smoothed
    class) on every accepted input and argmax f_std(x) on every rejected one. Gradients flow through the
    chosen branch only; the selector's decision is not differentiable, which is why the composite is
    evaluated with :func:`~tradeoff.attacks.adaptive.era_adaptive_attack` rather than a gradient attack on
    F alone.
    """

    def __init__(self, robust: nn.Module, standard: nn.Module,
                 selector: EmpiricalSelector | CertifiedSelector):
        super().__init__()
        self.robust = robust
        self.standard = standard
        self.selector = selector

    def sound_selection(self, x: torch.Tensor) -> torch.Tensor:
        """The 2ε rule: True where the robust model passes the selector's test at radius (scale + 1)·ε
        around ``x``, so that the selector accepts, with the same output, every point of B(x, ε)."""
        return self.selector.indicator(x, self.selector.scale + 1.0)

    def decide(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(selected, log-probabilities of F) at ``x``."""
        sel = self.selector(x)
        std = F.log_softmax(self.standard(x), dim=1)
        return sel.selected, torch.where(sel.selected[:, None], sel.branch_logp, std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decide(x)[1]


@dataclass
class CleanDecision:
    """The composite at clean inputs: runtime selection, the 2ε rule's sound selection, F's prediction,
    the branch's and the standard model's predictions, and (certified selector) whether the branch's
    certificate covers the ε-ball (None for the empirical selector: that comes from robustness records).
    With a strong check (empirical selector): ``strong_flip_eps`` marks the points where the strong attack
    changes the robust model's prediction within ε (None without the check)."""

    selected: torch.Tensor
    sound: torch.Tensor
    prediction: torch.Tensor
    branch_prediction: torch.Tensor
    standard_prediction: torch.Tensor
    branch_certified: torch.Tensor | None
    strong_flip_eps: torch.Tensor | None = None


@torch.no_grad()
def clean_decision(composite: Composite, x: torch.Tensor, strong: RobustnessAttack | None = None, *,
                   generator: torch.Generator | None = None, seed: int = 0) -> CleanDecision:
    """Evaluate ``composite`` at clean inputs, running each selector test once.

    Guarantee: ``prediction`` equals ``composite(x).argmax(1)``; ``sound`` is the selector's test at
    radius (scale + 1)·ε (see :meth:`Composite.sound_selection`) and, with ``strong`` (empirical selector),
    additionally requires that the strong robustness test (:func:`robustness_test`: random starts,
    restarts, margin loss, best iterate) finds no change of the robust model's prediction within
    (scale + 1)·ε, so that the sound selection rate is not overstated by a weak runtime test.
    """
    sel = composite.selector
    std = composite.standard(x).argmax(1)
    flip_eps = None
    if isinstance(sel, CertifiedSelector):
        preds, radii, _ = sel.certify(x)
        d = x[0].numel()
        selected, sound = sel.accepts(preds, radii, sel.scale, d), sel.accepts(preds, radii, sel.scale + 1.0, d)
        certified = sel.accepts(preds, radii, 1.0, d)
        branch = preds
    else:
        selected, sound = sel.indicator(x, sel.scale), sel.indicator(x, sel.scale + 1.0)
        certified = None
        branch = composite.robust(x).argmax(1)
        if strong is not None:
            with torch.enable_grad():
                wide = robustness_test(composite.robust, x, sel.threat.scaled(sel.scale + 1.0), strong,
                                       generator=generator, seed=seed, device=x.device)
                near = robustness_test(composite.robust, x, sel.threat, strong, generator=generator, seed=seed,
                                       device=x.device)
            sound = sound & wide.robust.to(x.device)
            flip_eps = ~near.robust.to(x.device)
    return CleanDecision(selected, sound, torch.where(selected, branch, std), branch, std, certified, flip_eps)


def build_selector(spec: Mapping[str, Any], robust: Model, num_classes: int, threat: Threat
                   ) -> EmpiricalSelector | CertifiedSelector:
    """A selector from its description ``{kind: empirical|certified, scale, ...}``."""
    kind = spec.get("kind", "empirical")
    scale = float(spec.get("scale", 1.0))
    seed = int(spec.get("seed", 0))
    if kind == "empirical":
        return EmpiricalSelector(robust, threat, scale=scale, steps=int(spec.get("steps", 10)),
                                 step_rel=float(spec.get("step_rel", 0.25)),
                                 restarts=int(spec.get("restarts", 1)), seed=seed)
    if kind == "certified":
        return CertifiedSelector(robust, num_classes, threat, sigma=float(spec["sigma"]),
                                 n0=int(spec.get("n0", 100)), n=int(spec.get("n", 1000)),
                                 alpha=float(spec.get("alpha", 0.001)), scale=scale, seed=seed,
                                 batch_size=int(spec.get("batch_size", 1000)))
    raise ValueError(f"unknown selector kind '{kind}' (empirical, certified)")


@register_kind("era-composite")
def _load_composite(spec: Mapping[str, Any], spec_path: Any, device: torch.device) -> nn.Module:
    """Loader of ``kind: era-composite`` descriptions (robust and standard classifier JSONs, selector,
    threat, input bounds)."""
    robust = load_classifier(spec["robust"], device)
    standard = load_classifier(spec["standard"], device)
    num_classes = int(read_json(spec["robust"])["num_classes"])
    t = spec["threat"]
    bounds = spec.get("bounds")
    box = None if bounds is None else (float(bounds[0]), float(bounds[1]))
    threat = Threat(str(t["norm"]), float(t["eps"]), box)
    return Composite(robust, standard, build_selector(spec["selector"], robust, num_classes, threat))


# ----------------------------------------------------------------------------------------------------------
# The end-to-end adaptive attack on the composite
# ----------------------------------------------------------------------------------------------------------
