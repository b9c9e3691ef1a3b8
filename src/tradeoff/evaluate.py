"""Per-sample evaluation of a classifier: clean, PGD and AutoAttack.

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

log = logging.getLogger("tradeoff")
RECORD_COLUMNS = ["index", "label", "clean_prediction", "prediction", "correct", "perturbation"]


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
    """Evaluate ``model`` on ``(x, y)`` under ``attack`` ∈ {clean, pgd, autoattack}.

    Returns the per-sample records and metadata (attack parameters, AutoAttack's flags). The attacked
    model is the full ``model`` (for composites: end to end).
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
        for i in range(0, x.shape[0], batch_size):
            xb, yb = x[i:i + batch_size].to(device), y[i:i + batch_size].to(device)
            advs.append(attack_model(model, xb, yb, threat, steps=steps, step_size=step,
                                     restarts=int(params.get("restarts", 1)), loss=str(params.get("loss", "ce")),
                                     generator=gen if device.type == "cpu" else None).cpu())
        x_adv = torch.cat(advs)
        adv_pred = predict(model, x_adv, batch_size, device)
        adv_pred = torch.where(clean == y, adv_pred, clean)  # clean errors stay errors, as in AutoAttack
        return _records(y, clean, adv_pred, perturbation_size(x, x_adv, threat.norm)), meta
    if attack == "autoattack":
        result = run_autoattack(
            model, x, y, norm=threat.norm, eps=threat.eps, version=str(params.get("version", "custom")),
            attacks=tuple(params.get("attacks", ("apgd-ce", "apgd-t"))), n_iter=int(params.get("n_iter", 100)),
            apgd_restarts=int(params.get("apgd_restarts", 1)), n_target_classes=int(params.get("n_target_classes", 9)),
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
    raise ValueError(f"unknown attack '{attack}' (clean, pgd, autoattack)")


def clean_records(records: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The clean evaluation's records, read off an attack's records (which carry the clean predictions).

    Guarantee: equal to the records of ``run_attack(..., attack="clean")`` on the same model and points,
    without a second pass over the data.
    """
    return [
        {"index": int(r["index"]), "label": int(r["label"]), "clean_prediction": int(r["clean_prediction"]),
         "prediction": int(r["clean_prediction"]), "correct": int(r["clean_prediction"] == r["label"]),
         "perturbation": 0.0}
        for r in records
    ]


def accuracy_rows(dataset: str, classifier: str, evaluation: str, threat: Threat | None,
                  records: list[Mapping[str, Any]], metric: str = "accuracy",
                  column: str = "correct") -> list[dict[str, Any]]:
    """The tidy summary row(s) of one per-sample evaluation."""
    n = len(records)
    value = sum(float(r[column]) for r in records) / n if n else float("nan")
    return [summary_row(dataset, classifier, evaluation, threat, metric, value, n)]


def summary_row(dataset: str, classifier: str, evaluation: str, threat: Threat | None, metric: str,
                value: float, n: int) -> dict[str, Any]:
    """One row of ``results/summary.csv``: dataset, classifier, evaluation, norm, eps, metric, value, n."""
    return {
        "dataset": dataset, "classifier": classifier, "evaluation": evaluation,
        "norm": "" if threat is None else threat.norm, "eps": 0.0 if threat is None else float(threat.eps),
        "metric": metric, "value": float(value), "n": int(n),
    }
