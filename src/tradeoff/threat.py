"""The threat model: a norm ball of radius ε intersected with the valid input box (no torch here, so that
the light commands that only read records start without importing it)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Threat:
    """A perturbation set: ``norm`` ∈ {Linf, L2}, radius ``eps``, and the valid input box (or None)."""

    norm: str
    eps: float
    bounds: tuple[float, float] | None = (0.0, 1.0)

    def __post_init__(self) -> None:
        if self.norm not in ("Linf", "L2"):
            raise ValueError(f"norm must be Linf or L2, got {self.norm!r}")
        if self.eps < 0:
            raise ValueError(f"eps must be non-negative, got {self.eps}")

    def scaled(self, factor: float) -> Threat:
        return Threat(self.norm, self.eps * factor, self.bounds)
