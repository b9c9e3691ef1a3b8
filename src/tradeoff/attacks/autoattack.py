"""AutoAttack through ``pyautoattack`` (the PyPI packaging of the reference implementation).

The reference code's own sanity checks (randomized defense, zero gradients, Square beating the
white-box attacks, output range, dynamic model, too few classes for the targeted attacks) report through
the ``auto-attack`` logger; :func:`run_autoattack` captures them and returns them as flags.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

FLAG_PATTERNS = {
    "randomized": "randomized",
    "zero_gradient": "gradient",
    "square_beats_whitebox": "square",
    "output_range": "probabilit",
    "dynamic": "dynamic",
    "n_classes": "classes",
}


@dataclass
class AutoAttackResult:
    """Adversarial inputs (the clean input where no attack succeeded), predictions on them, flags."""

    x_adv: torch.Tensor
    prediction: torch.Tensor
    flags: dict[str, bool]
    messages: list[str] = field(default_factory=list)
    accuracy_by_attack: dict[str, float] = field(default_factory=dict)


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.warnings: list[str] = []
        self.debug: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.getMessage()
        (self.warnings if record.levelno >= logging.WARNING else self.debug).append(msg)


class _Logits(torch.nn.Module):
    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor]):
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


def run_autoattack(
    model: torch.nn.Module | Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    norm: str,
    eps: float,
    version: str = "custom",
    attacks: Sequence[str] = ("apgd-ce", "apgd-t"),
    n_iter: int = 100,
    apgd_restarts: int = 1,
    n_target_classes: int = 9,
    square_queries: int = 5000,
    batch_size: int = 250,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> AutoAttackResult:
    """Run AutoAttack on ``(x, y)``; the per-sample worst case is the returned ``prediction``.

    ``version='standard'`` runs the reference suite unchanged (APGD-CE, APGD-T, FAB-T, Square with the
    reference hyper-parameters). ``version='custom'`` runs ``attacks`` with ``n_iter`` iterations,
    ``apgd_restarts`` restarts of APGD-CE and ``n_target_classes`` targets (capped at classes − 1).
    Every point the returned prediction marks as correct survived every attack that was run.
    """
    from pyautoattack import AutoAttack

    net = model if isinstance(model, torch.nn.Module) else _Logits(model)
    num_classes = int(net(x[:1].to(device)).shape[1])
    kwargs = {"norm": norm, "eps": float(eps), "version": version, "device": device, "seed": seed}
    if version == "custom":
        kwargs["attacks"] = list(attacks)
    adversary = AutoAttack(net, **kwargs)
    if version == "custom":
        adversary.apgd.n_restarts = apgd_restarts
        for attack in (adversary.apgd, adversary.apgd_targeted):
            attack.n_iter = n_iter
        adversary.apgd_targeted.n_target_classes = max(1, min(n_target_classes, num_classes - 1))
        adversary.fab.n_target_classes = max(1, min(n_target_classes, num_classes - 1))
        adversary.square.n_queries = square_queries
    capture = _Capture()
    logger = logging.getLogger("auto-attack")
    previous_level = logger.level
    logger.addHandler(capture)
    logger.setLevel(logging.DEBUG)
    try:
        x_adv, y_adv = adversary.run_standard_evaluation(x.to(device), y.to(device), batch_size=batch_size)
    finally:
        logger.removeHandler(capture)
        logger.setLevel(previous_level)
    flags = {name: any(pattern in m.lower() for m in capture.warnings) for name, pattern in FLAG_PATTERNS.items()}
    per_attack: dict[str, float] = {}
    for m in capture.debug:
        if m.startswith("robust accuracy after "):
            name = m.split("robust accuracy after ")[1].split(":")[0].strip().lower()
            per_attack[name] = float(m.split(":")[1].split("%")[0]) / 100.0
    return AutoAttackResult(x_adv.detach().cpu(), y_adv.detach().cpu(), flags, capture.warnings, per_attack)
