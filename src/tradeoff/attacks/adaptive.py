"""Adaptive attacks on composite classifiers (Tramèr et al. 2020, "On Adaptive Attacks to Adversarial
Example Defenses": attack the whole defense, every component it has).

* the ERA composition F = robust where the selector accepts, standard elsewhere (Merkli et al.):
  :func:`era_adaptive_attack` tries both ways of fooling F (accepted while the robust model is wrong;
  rejected while the standard model is wrong);
* the mixing network's composite h_α(x) (Bai et al., adaptive smoothing, Sec. 2.4): :func:`mixnet_attack`
  maximizes (1−w)·L + w·BCE(γ, 1), driving α(x) towards the non-robust model; its evaluation attack
  :func:`mixnet_evaluation_attack` runs it over several w, then :func:`composite_suite` on what stands;
* for every composite, :func:`composite_suite`: targeted margin runs on the composite towards its top-k
  other classes (the strongest single attack on the mixing network in an outside evaluation) and transfer
  from each base model (margin PGD crafted on the base model, judged on the composite; Carlini et al. 2019,
  Sec. 4.4).

A point counts as broken if any of them breaks it; every candidate is judged by running the composite.
All attacks are the package's one PGD loop.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import torch
import torch.nn.functional as F

from .pgd import LOSSES, Threat, attack_model, dlr_targeted_loss, pgd
from .suite import MarginSuite, margin_attack, other_classes

if TYPE_CHECKING:
    from ..abstain import Composite

Model = Callable[[torch.Tensor], torch.Tensor]


class MixOutputs(Protocol):
    """What the attacks read of a mixed classifier's full forward pass: the mixture's output and the mixing
    network's pre-sigmoid γ (α = σ(γ))."""

    out: torch.Tensor
    gamma: torch.Tensor


class MixedModel(Protocol):
    """A mixed classifier as the attacks see it (:class:`tradeoff.mixing.model.MixedClassifier`): callable on
    inputs, with its accurate and robust base models ``g`` and ``h``, its mixing network ``net`` (None for a
    fixed α) and :meth:`forward_all`."""

    g: Model
    h: Model
    net: Any

    def __call__(self, x: torch.Tensor) -> torch.Tensor: ...

    def forward_all(self, x: torch.Tensor) -> MixOutputs: ...


def adaptive_objective(model: MixedModel, y: torch.Tensor, w: float | torch.Tensor, loss: str = "ce",
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


@dataclass(frozen=True)
class CompositeSuite:
    """The attacks every composite gets on top of its own: ``targets`` targeted margin runs on the composite
    (towards its 2nd..(targets+1)-th classes), each of ``steps`` steps of ``step_rel``·ε and
    ``target_restarts`` starts, and, when ``transfer``, margin PGD with ``transfer_restarts`` starts (and
    the same ``targets`` targeted runs, ranked on the base model) crafted on each base model. Defaults do
    nothing (the attacks of the composite alone)."""

    targets: int = 0
    transfer: bool = False
    steps: int = 20
    step_rel: float = 0.125
    target_restarts: int = 1
    transfer_restarts: int = 1

    @property
    def active(self) -> bool:
        return self.targets > 0 or self.transfer

    @classmethod
    def from_mapping(cls, params: Mapping[str, Any]) -> CompositeSuite:
        """From a config section's keys ``targets``, ``transfer``, ``suite_steps``, ``suite_step_rel``,
        ``target_restarts``, ``transfer_restarts`` (absent keys keep the defaults)."""
        d = cls()
        return cls(targets=int(params.get("targets", d.targets)), transfer=bool(params.get("transfer", d.transfer)),
                   steps=int(params.get("suite_steps", d.steps)),
                   step_rel=float(params.get("suite_step_rel", d.step_rel)),
                   target_restarts=int(params.get("target_restarts", d.target_restarts)),
                   transfer_restarts=int(params.get("transfer_restarts", d.transfer_restarts)))


@dataclass
class SuiteOutcome:
    """Per point: fooled by some attack of :func:`composite_suite`, the point that did it (else the clean
    input) and which attack (``margin-t<j>`` or ``transfer-<base>``; ``""`` if none)."""

    fooled: torch.Tensor
    x_adv: torch.Tensor
    path: list[str]
    fooled_by_transfer: torch.Tensor


class LazySelection(torch.nn.Module):
    """The ERA composite with an empirical selector, for gradient steps only: the selector's decision is
    recomputed every ``every`` calls (and whenever the batch changes) and reused in between.

    The decision is piecewise constant, so its gradient is zero and F's gradient is the chosen branch's
    (BPDA, Athalye et al. 2018, Sec. 4.1); reusing the decision for a few steps changes only which branch's
    gradient a step follows, not what counts as a success: every candidate is judged on the real
    composite. It spares the selector's own PGD (``steps`` forward/backward passes of the robust model) on
    most steps. Guarantee: the output equals ``composite(x)`` on every call that refreshes the decision.
    """

    def __init__(self, composite: Composite, every: int):
        super().__init__()
        self.composite = composite
        self.every = max(1, int(every))
        self.calls = 0
        self.mask: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mask is None or self.mask.shape[0] != x.shape[0] or self.calls % self.every == 0:
            with torch.no_grad():
                self.mask = self.composite.selector(x.detach()).selected
        self.calls += 1
        rob = F.log_softmax(self.composite.robust(x), dim=1)
        std = F.log_softmax(self.composite.standard(x), dim=1)
        return torch.where(self.mask[:, None], rob, std)


def composite_suite(composite: Model, bases: Mapping[str, Model], x: torch.Tensor, target: torch.Tensor,
                    threat: Threat, suite: CompositeSuite, *, generator: torch.Generator | None = None,
                    gradient_model: Model | None = None) -> SuiteOutcome:
    """Targeted margin runs on ``composite`` towards its top-``suite.targets`` other classes (ranked on the
    clean logits), then transfer from each model of ``bases``; each run only on the points still standing.

    Guarantee: ``fooled[i]`` ⇒ ``x_adv[i]`` ∈ B(x_i, ε) ∩ bounds and ``composite(x_adv[i]).argmax() !=
    target[i]`` (judged on the composite itself, e.g. with its selector); False only says these attacks
    failed. ``fooled_by_transfer`` marks the points first broken by a transfer run. ``gradient_model``
    (default: the composite) is what the targeted runs differentiate; success is always judged on
    ``composite``.
    """
    x = x.detach()
    n = x.shape[0]
    fooled = torch.zeros(n, dtype=torch.bool, device=x.device)
    by_transfer = torch.zeros(n, dtype=torch.bool, device=x.device)
    best = x.clone()
    path = [""] * n
    if threat.eps == 0 or n == 0:
        return SuiteOutcome(fooled.cpu(), best.cpu(), path, by_transfer.cpu())
    step = suite.step_rel * threat.eps

    def judge(idx: torch.Tensor, cand: torch.Tensor, name: str, transfer: bool) -> None:
        with torch.no_grad():
            hit = composite(cand).argmax(1) != target[idx]
        for j in torch.nonzero(hit).flatten().tolist():
            i = int(idx[j])
            fooled[i], best[i], path[i], by_transfer[i] = True, cand[j], name, transfer

    if suite.targets > 0:
        with torch.no_grad():
            towards = other_classes(composite(x), target, suite.targets)
        for j in range(towards.shape[1]):
            idx = torch.nonzero(~fooled).flatten()
            if len(idx) == 0:
                break
            with torch.enable_grad():
                cand = attack_model(gradient_model or composite, x[idx], target[idx], threat, steps=suite.steps,
                                    step_size=step, restarts=suite.target_restarts, towards=towards[idx, j],
                                    generator=generator)
            judge(idx, cand, f"margin-t{j + 1}", False)
    if suite.transfer:
        for name, base in bases.items():
            idx = torch.nonzero(~fooled).flatten()
            if len(idx) == 0:
                break
            res = margin_attack(base, x[idx], target[idx], threat,
                                MarginSuite(steps=suite.steps, step_rel=suite.step_rel,
                                            restarts=suite.transfer_restarts, targets=suite.targets),
                                generator=generator)
            judge(idx, res.x_adv.to(x.device), f"transfer-{name}", True)
    return SuiteOutcome(fooled.cpu(), best.cpu(), path, by_transfer.cpu())


# ----------------------------------------------------------------------------------------------------------
# The ERA composition (Merkli et al.): both ways of fooling F
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AdaptiveAttack:
    """Hyper-parameters of :func:`adaptive_attack`: PGD ``steps`` of ``step_rel``·ε, ``restarts`` per
    objective, and the weights ``lambdas`` of the term that drives the robust model to its decision
    boundary (so that the selector rejects) in the reject-path objective; the composite suite's targeted
    runs recompute an empirical selector's decision every ``selector_refresh`` steps (:class:`LazySelection`).
    """

    steps: int = 40
    step_rel: float = 0.1
    restarts: int = 1
    lambdas: tuple[float, ...] = (0.0, 1.0)
    suite: CompositeSuite = CompositeSuite()
    selector_refresh: int = 1

    @classmethod
    def from_mapping(cls, params: Mapping[str, Any]) -> AdaptiveAttack:
        return cls(steps=int(params.get("steps", 40)), step_rel=float(params.get("step_rel", 0.1)),
                   restarts=int(params.get("restarts", 1)),
                   lambdas=tuple(float(v) for v in params.get("lambdas", (0.0, 1.0))),
                   suite=CompositeSuite.from_mapping(params),
                   selector_refresh=int(params.get("selector_refresh", 1)))


@dataclass
class AdaptiveResult:
    """Per sample: whether some candidate changed F's prediction, the first such candidate (else the
    clean input), F's prediction and selection there, and which path found it (``accept`` / ``reject-λ``)."""

    fooled: torch.Tensor
    x_adv: torch.Tensor
    prediction: torch.Tensor
    selected: torch.Tensor
    path: list[str] = field(default_factory=list)


def top2_margin(logits: torch.Tensor) -> torch.Tensor:
    """Largest minus second-largest logit, per sample (0 on the decision boundary)."""
    top = logits.topk(2, dim=1).values
    return top[:, 0] - top[:, 1]


def era_adaptive_attack(composite: Composite, x: torch.Tensor, target: torch.Tensor, threat: Threat,
                    attack: AdaptiveAttack, *, generator: torch.Generator | None = None) -> AdaptiveResult:
    """Try both ways of changing F's prediction ``target`` (normally F(x), = y on correct points) in B(x, ε).

    * **accept path**: keep the selector accepting while the robust model is wrong — PGD maximizing
      CE(f_rob(x'), target) without early stopping, which drives x' deep into another class of f_rob,
      where the selector's 2ε test is least likely to flip it back;
    * **reject path**, one run per λ: make the selector reject and fool the standard model — PGD
      maximizing CE(f_std(x'), target) − λ·margin(f_rob(x')), pulling f_rob towards its decision
      boundary so that the selector's attack succeeds and F falls back to f_std.

    * then :func:`composite_suite` on the points still standing: targeted margin runs on F towards its
      top-k other classes and transfer from the robust and the standard model (``attack.suite``).

    Every candidate is judged by running the real composite on it (selector included), so a reported
    success is a genuine point of B(x, ε) ∩ bounds where F's prediction differs from ``target``.
    Guarantee: ``fooled[i]`` True ⇒ ``x_adv[i]`` is such a point; False only says these attacks failed.
    """
    x = x.detach()
    fooled = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
    best = x.clone()
    path = [""] * x.shape[0]
    with torch.no_grad():
        sel0, out0 = composite.decide(x)
    pred = out0.argmax(1)
    chosen_sel = sel0.clone()
    fooled |= pred != target
    for i in torch.nonzero(fooled).flatten().tolist():
        path[i] = "clean"
    if threat.eps == 0:
        return AdaptiveResult(fooled.cpu(), best.cpu(), pred.cpu(), chosen_sel.cpu(), path)
    rob, std = composite.robust, composite.standard
    step = attack.step_rel * threat.eps
    objectives: list[tuple[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]] = [
        ("accept", lambda z, t: F.cross_entropy(rob(z), t, reduction="none"))]
    for lam in attack.lambdas:
        objectives.append((f"reject-{lam:g}",
                           lambda z, t, lam=lam: F.cross_entropy(std(z), t, reduction="none")
                           - lam * top2_margin(rob(z))))
    for name, objective in objectives:
        for _ in range(attack.restarts):
            todo = torch.nonzero(~fooled).flatten()
            if len(todo) == 0:
                break
            xs, ts = x[todo], target[todo]
            with torch.enable_grad():
                cand = pgd(lambda z, o=objective, t=ts: o(z, t), xs, threat, steps=attack.steps,
                           step_size=step, generator=generator)
            with torch.no_grad():
                sel, out = composite.decide(cand)
            hit = out.argmax(1) != ts
            for j in torch.nonzero(hit).flatten().tolist():
                i = int(todo[j])
                fooled[i] = True
                best[i] = cand[j]
                pred[i] = out[j].argmax()
                chosen_sel[i] = sel[j]
                path[i] = name
    todo = torch.nonzero(~fooled).flatten()
    if len(todo) and attack.suite.active:
        lazy = (LazySelection(composite, attack.selector_refresh)
                if hasattr(composite.selector, "indicator") and attack.selector_refresh > 1 else None)
        extra = composite_suite(composite, {"robust": rob, "standard": std}, x[todo], target[todo], threat,
                                attack.suite, generator=generator, gradient_model=lazy)
        for j in torch.nonzero(extra.fooled).flatten().tolist():
            i = int(todo[j])
            with torch.no_grad():
                sel, out = composite.decide(extra.x_adv[j:j + 1].to(x.device))
            fooled[i] = True
            best[i] = extra.x_adv[j].to(x.device)
            pred[i] = out[0].argmax()
            chosen_sel[i] = sel[0]
            path[i] = extra.path[j]
    return AdaptiveResult(fooled.cpu(), best.cpu(), pred.cpu(), chosen_sel.cpu(), path)


# ----------------------------------------------------------------------------------------------------------
# The mixing network's composite (Bai et al., adaptive smoothing, Sec. 2.4)
# ----------------------------------------------------------------------------------------------------------


def mixnet_attack(model: MixedModel, x: torch.Tensor, y: torch.Tensor, threat: Threat, *, w: float,
                    steps: int, step_rel: float, restarts: int, momentum: float = 0.0, loss: str = "ce",
                    schedule: str = "cosine", generator: torch.Generator | None = None) -> torch.Tensor:
    """The stronger end-to-end attack of Bai et al. (2024) on a mixing-network composite: PGD maximizing
    ``(1−w)·L + w·BCE(γ, 1)`` (``L`` = CE, or the margin / DLR loss), restarts kept per sample until one
    misclassifies.

    Guarantee: returned points lie in the threat's ball and bounds; a point is returned misclassified if
    any restart found a misclassified point (checked on the final iterate of each restart).
    """

    def success(z: torch.Tensor) -> torch.Tensor:
        return model(z).argmax(1) != y

    return pgd(adaptive_objective(model, y, w, loss), x, threat, steps=steps, step_size=step_rel * threat.eps,
               restarts=restarts, momentum=momentum, schedule=schedule, success=success, generator=generator)


def mixnet_worst_case(model: MixedModel, x: torch.Tensor, y: torch.Tensor, threat: Threat,
                        ws: Sequence[float], **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Run :func:`mixnet_attack` once per weight ``w`` in ``ws``; per sample keep the first misclassified
    result, else the result for ``ws[0]``.

    Returns ``(x_adv, broken_by)``: ``broken_by[i]`` is the index in ``ws`` of the attack that misclassified
    point ``i`` (``-1`` if none did). Guarantee: ``model(x_adv[i])`` is wrong whenever any of the attacks
    found a wrong prediction for point ``i``.
    """
    if not ws:
        raise ValueError("at least one weight w is needed")
    best = x.clone()
    broken_by = torch.full((x.shape[0],), -1, dtype=torch.long, device=x.device)
    for k, w in enumerate(ws):
        x_adv = mixnet_attack(model, x, y, threat, w=float(w), **kwargs)
        with torch.no_grad():
            wrong = model(x_adv).argmax(1) != y
        take = (broken_by < 0) & wrong
        if k == 0:
            best = x_adv.clone()
        best[take] = x_adv[take]
        broken_by[take] = k
    return best, broken_by


@dataclass
class MixnetOutcome:
    """Per point of :func:`mixnet_evaluation_attack`: the attacked input (the clean one if nothing broke
    it), the index in ``ws`` of the white-box run that broke it (``-1`` if none), which attack did
    (``w=<w>``, a :func:`composite_suite` path, or ``""``) and whether it still stood when the transfer
    runs started (all white-box attacks done)."""

    x_adv: torch.Tensor
    broken_by: torch.Tensor
    path: list[str]
    standing_before_transfer: torch.Tensor


def mixnet_evaluation_attack(model: MixedModel, x: torch.Tensor, y: torch.Tensor, threat: Threat,
                             params: Mapping[str, Any], suite: CompositeSuite, alive: torch.Tensor, *,
                             generator: torch.Generator | None = None) -> MixnetOutcome:
    """The mixing network's adaptive evaluation attack (Bai et al., Sec. 2.4): :func:`mixnet_worst_case` over
    the weights ``params["w"]`` (PGD ``steps``, ``step_rel``, ``restarts``, ``momentum``, ``loss``,
    ``schedule``), then the :class:`CompositeSuite` (targeted runs on the composite, transfer from ``g`` and
    ``h``) on the points that are still standing, i.e. ``alive`` (e.g. correct clean and under AutoAttack)
    and not broken by the white-box runs. All runs draw from ``generator`` in this order.

    Guarantee: every ``x_adv[i]`` lies in the threat's ball and bounds; ``standing_before_transfer[i]``
    implies ``alive[i]``.
    """
    ws = list(params["w"]) if isinstance(params["w"], list) else [params["w"]]
    x_adv, broken_by = mixnet_worst_case(
        model, x, y, threat, ws, steps=int(params["steps"]), step_rel=float(params["step_rel"]),
        restarts=int(params["restarts"]), momentum=float(params.get("momentum", 0.0)),
        loss=str(params.get("loss", "ce")), schedule=str(params.get("schedule", "cosine")), generator=generator)
    path = [f"w={ws[int(k)]:g}" if k >= 0 else "" for k in broken_by.tolist()]
    with torch.no_grad():
        standing = (model(x_adv).argmax(1) == y) & alive.to(y.device)
    before = standing.clone()
    todo = torch.nonzero(standing).flatten()
    if suite.active and len(todo):  # targeted margin runs and transfer, on the points still standing
        extra = composite_suite(model, {"accurate": model.g, "robust": model.h}, x[todo], y[todo], threat, suite,
                                generator=generator)
        for j in torch.nonzero(extra.fooled).flatten().tolist():
            x_adv[int(todo[j])] = extra.x_adv[j].to(x_adv.device)
            path[int(todo[j])] = extra.path[j]
            before[int(todo[j])] = bool(extra.fooled_by_transfer[j])
    return MixnetOutcome(x_adv, broken_by, path, before)
