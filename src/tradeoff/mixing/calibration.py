"""The inverse temperatures ``T_g`` and ``T_h`` of a mixture, chosen on the calibration split by temperature
scaling (Guo et al. 2017), and the ``mixing-temperatures`` job that writes them."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..classifiers import load_classifier, load_spec
from ..data import load as load_splits
from ..io import provenance, write_json

log = logging.getLogger("tradeoff")


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
    :func:`~tradeoff.mixing.spec.resolve_temperatures` checks). Returns the JSON written."""
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
