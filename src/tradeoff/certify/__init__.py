"""Certification: Monte-Carlo sampling core, binomial bounds, randomized smoothing (Cohen et al.),
mixed-classifier certificates and probabilistic (eps, kappa) robustness tests."""

from .bounds import cp_lower, cp_upper, min_samples_for_radius
from .cohen import ABSTAIN, CertifyResult, Smooth, certify_from_counts, predict_from_counts
from .mixed import (
    MixedCertificate,
    certify_mixed,
    confidence_bounds,
    mixed_lipschitz_radius,
    mixed_prediction_agrees,
    mixed_rs_radius,
)
from .probabilistic import (
    GroupSequentialRule,
    Outcome,
    SequentialTest,
    certify_probabilistic,
    fixed_test,
    run_sequential,
)
from .sampling import (
    GaussianNoise,
    NoiseSampler,
    UniformL2Ball,
    UniformLinfBall,
    count_classes,
    iter_predictions,
    point_generator,
)

__all__ = [
    "ABSTAIN",
    "CertifyResult",
    "GaussianNoise",
    "GroupSequentialRule",
    "MixedCertificate",
    "NoiseSampler",
    "Outcome",
    "SequentialTest",
    "Smooth",
    "UniformL2Ball",
    "UniformLinfBall",
    "certify_from_counts",
    "certify_mixed",
    "certify_probabilistic",
    "confidence_bounds",
    "count_classes",
    "cp_lower",
    "cp_upper",
    "fixed_test",
    "iter_predictions",
    "min_samples_for_radius",
    "mixed_lipschitz_radius",
    "mixed_prediction_agrees",
    "mixed_rs_radius",
    "point_generator",
    "predict_from_counts",
    "run_sequential",
]
