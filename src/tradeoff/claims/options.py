"""Which classifiers play which role in the claims, and the statistical settings (``tradeoff claims --options``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ClaimOptions:
    """Roles of the classifiers, the run's dataset name, and the statistical settings of every claim."""

    dataset: str = ""
    """The run's dataset, as claims name it (empty: read from the record paths ``results/<dataset>/...``)."""
    standard: str = "standard"
    robust_base: str = "pgd_at"
    """The robust base model of the fixed-weight mixtures and the mixing network."""
    robust_models: tuple[str, ...] = ("pgd_at", "trades")
    """Adversarially trained models: compared with the standard model, and the baselines of the variance model."""
    robust_evaluations: tuple[str, ...] = ("worst", "adaptive", "autoattack", "pgd")
    """Attack records in order of preference: the first present gives a classifier's robust accuracy."""
    era_composites: Mapping[str, str] = field(default_factory=lambda: {"era": "era-composite",
                                                                      "trades": "era-composite-trades"})
    """Branch model -> id of its composite with the standard model (same selector, same attack)."""
    prob_trained: str = "variance"
    prob_tests: tuple[str, ...] = ("sequential", "fixed")
    clean_tolerance: float = 0.01
    """"At (almost) no clean cost" / "at equal clean accuracy": a clean-accuracy loss up to this is allowed."""
    confidence: float = 0.95
    resamples: int = 2000
    seed: int = 0
    # the simulation of the paper's per-sample probabilistic test (Zhang et al. 2023, Algorithm 2)
    kappa: float = 0.01
    alpha: float = 0.01
    n_max: int = 1000
    growth: float = 2.0
    first_look_share: float = 0.9
    simulations: int = 20_000
    naive_step: int = 1
    """The paper's test looks after every ``naive_step`` samples (Algorithm 2: after each sample)."""
    rs_radius: float = 0.5
    """ℓ2 radius at which certified accuracy is compared with the clean one (Cohen et al.'s CIFAR-10 r = 0.5)."""
    rs_large_radius: float = 0.75
    """ℓ2 radius of Cohen et al.'s "larger σ gains at large radii" (their CIFAR-10 gain starts at r = 0.75)."""
    rs_n: int = 2000
    rs_alpha: float = 0.001
    """The certification's n and α: they cap the radius a noise level σ can certify, σ·Φ⁻¹(α^(1/n))."""
    mixed_radius: float = 0.25
    """ℓ2 radius of the mixed classifier's certified accuracy, compared with the chord between its base models."""
