"""Certification: Monte-Carlo sampling core, binomial bounds, randomized smoothing (Cohen et al. 2019) and
mixed-classifier certificates (Bai et al. 2023). The probabilistic (eps, kappa) tests built on the same sampling
core are :mod:`tradeoff.probabilistic`."""

from __future__ import annotations

import importlib
from typing import Any

# Public names and the submodule defining each. Imported on first use, so that a job needing only the
# noise samplers does not pay for scipy.stats.
_WHERE = {
    "ABSTAIN": "cohen",
    "CertifyResult": "cohen",
    "GaussianNoise": "sampling",
    "MixedCertificate": "mixed",
    "NoiseSampler": "sampling",
    "Smooth": "cohen",
    "UniformL2Ball": "sampling",
    "UniformLinfBall": "sampling",
    "ball_sampler": "sampling",
    "certify_from_counts": "cohen",
    "certify_mixed": "mixed",
    "confidence_bounds": "mixed",
    "count_classes": "sampling",
    "cp_lower": "bounds",
    "cp_upper": "bounds",
    "iter_predictions": "sampling",
    "min_samples_for_radius": "bounds",
    "mixed_lipschitz_radius": "mixed",
    "mixed_prediction_agrees": "mixed",
    "mixed_rs_radius": "mixed",
    "point_generator": "sampling",
    "predict_from_counts": "cohen",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
