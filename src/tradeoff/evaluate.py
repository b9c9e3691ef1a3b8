"""Per-sample evaluation of a classifier: clean, PGD, margin-loss PGD with restarts, AutoAttack, ε-sweep.

Each evaluation returns one record per test point (index into the test split, label, clean prediction,
prediction on the attacked input, correctness, size of the perturbation found). Accuracy under attack is
the fraction of points whose attacked prediction equals the label; a point misclassified clean counts as
an error (the attack is not run on it, as in AutoAttack).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import torch

from .attacks.autoattack import run_autoattack
from .attacks.pgd import Threat, attack_model
from .attacks.suite import MarginSuite, eps_sweep, margin_attack
from .progress import Progress
from .records import (  # noqa: F401  (re-exported: the evaluation's record helpers)
    ATTACKS,
    RECORD_COLUMNS,
    SWEEP_COLUMNS,
    accuracy_rows,
    clean_records,
    evaluation_rows,
    summary_row,
)

log = logging.getLogger("tradeoff")
DEFAULT_EPS_FACTORS = (0.25, 0.5, 1.0, 2.0, 4.0)


@torch.no_grad()
def predict(model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, batch_size: int = 500,
            device: torch.device | str = "cpu") -> torch.Tensor:
    """argmax predictions of ``model`` on ``x`` in batches (CPU tensor of class indices)."""
    out = [model(x[i:i + batch_size].to(device)).argmax(1).cpu() for i in range(0, x.shape[0], batch_size)]
    return torch.cat(out) if out else torch.empty(0, dtype=torch.long)


def perturbation_size(x: torch.Tensor, x_adv: torch.Tensor, norm: str) -> torch.Tensor:
    d = (x_adv - x).flatten(1)
    return d.abs().max(1).values if norm == "Linf" else d.norm(dim=1)


def _records(y: torch.Tensor, clean: torch.Tensor, adv: torch.Tensor, size: torch.Tensor) -> list[dict[str, Any]]:
    # Tensors become Python lists once: indexing a tensor element by element costs microseconds per call.
    ys, cs, ads, sizes = y.tolist(), clean.tolist(), adv.tolist(), size.tolist()
    return [
        {"index": i, "label": int(ys[i]), "clean_prediction": int(cs[i]), "prediction": int(ads[i]),
         "correct": int(ads[i] == ys[i]), "perturbation": float(sizes[i])}
        for i in range(len(ys))
    ]


def attack_meta(attack: str, threat: Threat, params: Mapping[str, Any]) -> dict[str, Any]:
    """The metadata every evaluation's records start with."""
    return {"attack": attack, "norm": threat.norm, "eps": threat.eps, "params": dict(params)}


def run_attack(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    attack: str,
    threat: Threat,
    params: Mapping[str, Any],
    seed: int,
    device: torch.device,
    batch_size: int = 500,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Evaluate ``model`` on ``(x, y)`` under ``attack`` ∈ :data:`ATTACKS`.

    Returns the per-sample records and metadata (attack parameters, AutoAttack's flags and per-attack
    accuracies, points broken per run). The attacked model is the full ``model`` (for composites: end to
    end). ``margin``: :func:`~tradeoff.attacks.suite.margin_attack` (params steps, step_rel, restarts, loss,
    targets, target_restarts). ``eps-sweep``: the same attack at each budget ``eps_factors``·ε and, for ℓ∞ on
    a bounded input box, at the box's width (the whole box); its records carry an ``eps`` column
    (:data:`SWEEP_COLUMNS`), one block of points per budget.
    """
    clean = predict(model, x, batch_size, device)
    meta = attack_meta(attack, threat, params)
    if attack == "clean" or threat.eps == 0:
        return _records(y, clean, clean, torch.zeros(y.shape[0])), meta
    if attack == "pgd":
        gen = torch.Generator(device="cpu").manual_seed(seed)
        steps = int(params.get("steps", 20))
        step = float(params.get("step_rel", 2.5 / steps)) * threat.eps
        advs = []
        logged = Progress(x.shape[0], f"PGD-{steps}", unit="points")
        for i in range(0, x.shape[0], batch_size):
            xb, yb = x[i:i + batch_size].to(device), y[i:i + batch_size].to(device)
            advs.append(attack_model(model, xb, yb, threat, steps=steps, step_size=step,
                                     restarts=int(params.get("restarts", 1)), loss=str(params.get("loss", "ce")),
                                     generator=gen if device.type == "cpu" else None).cpu())
            logged.update(xb.shape[0])
        logged.close()
        x_adv = torch.cat(advs)
        adv_pred = predict(model, x_adv, batch_size, device)
        adv_pred = torch.where(clean == y, adv_pred, clean)  # clean errors stay errors, as in AutoAttack
        return _records(y, clean, adv_pred, perturbation_size(x, x_adv, threat.norm)), meta
    if attack in ("margin", "eps-sweep"):
        suite = MarginSuite.from_mapping(params)
        xd, yd = x.to(device), y.to(device)
        if attack == "margin":
            gen = torch.Generator(device="cpu").manual_seed(seed) if device.type == "cpu" else None
            res = margin_attack(model, xd, yd, threat, suite, generator=gen, batch_size=batch_size)
            meta["broken_by"] = res.counts()
            return _records(y, clean, res.prediction, perturbation_size(x, res.x_adv, threat.norm)), meta
        factors = [float(f) for f in params.get("eps_factors", DEFAULT_EPS_FACTORS)]
        if threat.norm == "Linf" and threat.bounds is not None and threat.eps > 0:
            # the sweep always reaches a budget that covers the whole input box, where every image is one
            # perturbation away and only masked gradients can keep the accuracy above 0 (Carlini et al. 2019)
            box = (threat.bounds[1] - threat.bounds[0]) / threat.eps
            if max(factors, default=0.0) < box:
                factors.append(box)
        records: list[dict[str, Any]] = []
        meta["eps_grid"] = []
        for eps, res in eps_sweep(model, xd, yd, threat, factors, suite, seed=seed, batch_size=batch_size):
            records += [{"eps": eps, **r} for r in _records(y, clean, res.prediction,
                                                              perturbation_size(x, res.x_adv, threat.norm))]
            meta["eps_grid"].append(eps)
        return records, meta
    if attack == "autoattack":
        result = run_autoattack(
            model, x, y, norm=threat.norm, eps=threat.eps, version=str(params.get("version", "custom")),
            attacks=tuple(params.get("attacks", ("apgd-ce", "apgd-t"))), n_iter=int(params.get("n_iter", 100)),
            apgd_restarts=int(params.get("apgd_restarts", 1)), n_target_classes=int(params.get("n_target_classes", 9)),
            square_queries=int(params.get("square_queries", 5000)), fab_iter=int(params.get("fab_iter", 100)),
            fab_target_classes=None if params.get("fab_target_classes") is None
            else int(params["fab_target_classes"]),
            batch_size=batch_size, seed=seed, device=device,
        )
        meta["flags"] = result.flags
        meta["warnings"] = result.messages
        meta["accuracy_by_attack"] = result.accuracy_by_attack
        for name, on in result.flags.items():
            if on:
                log.warning("AutoAttack flag raised: %s", name)
        adv_pred = predict(model, result.x_adv, batch_size, device)
        return _records(y, clean, adv_pred, perturbation_size(x, result.x_adv, threat.norm)), meta
    raise ValueError(f"unknown attack '{attack}' ({', '.join(ATTACKS)})")
