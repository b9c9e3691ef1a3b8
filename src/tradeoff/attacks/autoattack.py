"""AutoAttack through ``pyautoattack`` (the PyPI packaging of the reference implementation).

The reference code's own sanity checks (randomized defense, zero gradients, Square beating the
white-box attacks, output range, dynamic model, too few classes for the targeted attacks) report through
the ``auto-attack`` logger; :func:`run_autoattack` captures them and returns them as flags.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from ..progress import Progress

_BATCH = re.compile(r"^\S+ - (\d+)/(\d+) - ")
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
    """Collects the reference code's messages; with ``progress``, advances it by its per-batch messages
    ("running <attack>", "<attack> - <b>/<batches> - ...": one unit per attack, fractions per batch)."""

    def __init__(self, progress: Progress | None = None) -> None:
        super().__init__(level=logging.DEBUG)
        self.warnings: list[str] = []
        self.debug: list[str] = []
        self.progress = progress
        self._attack = -1

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.getMessage()
        (self.warnings if record.levelno >= logging.WARNING else self.debug).append(msg)
        if self.progress is None:
            return
        if msg.startswith("running "):
            self._attack += 1
            self.progress.set_postfix(f"({msg})")
            self.progress.update(self._attack - self.progress.n)
        elif (m := _BATCH.match(msg)) and self._attack >= 0:
            self.progress.update(self._attack + int(m.group(1)) / int(m.group(2)) - self.progress.n)


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
    fab_iter: int = 100,
    fab_target_classes: int | None = None,
    batch_size: int = 250,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> AutoAttackResult:
    """Run AutoAttack on ``(x, y)``; the per-sample worst case is the returned ``prediction``.

    ``version='standard'`` runs the reference suite unchanged (APGD-CE, APGD-T, FAB-T, Square with the
    reference hyper-parameters). ``version='custom'`` runs ``attacks`` in the given order with ``n_iter``
    iterations of each APGD run, ``apgd_restarts`` restarts of APGD-CE, ``n_target_classes`` targets of
    APGD-T and FAB-T (capped at classes − 1; ``fab_target_classes`` for FAB-T if given), ``fab_iter``
    iterations of FAB and ``square_queries`` queries of Square. pyautoattack runs each attack only on the
    points every earlier attack left standing, so FAB-T and Square after the APGD runs cost little
    (Croce & Hein 2020, Sec. 5).
    Every point the returned prediction marks as correct survived every attack that was run;
    ``accuracy_by_attack`` holds the robust accuracy after each attack (cumulative, non-increasing).
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
        fab_targets = n_target_classes if fab_target_classes is None else fab_target_classes
        adversary.fab.n_target_classes = max(1, min(fab_targets, num_classes - 1))
        adversary.fab.n_iter = fab_iter
        adversary.square.n_queries = square_queries
    capture = _Capture(Progress(len(adversary.attacks_to_run), f"AutoAttack ({x.shape[0]} points)", unit="attacks"))
    logger = logging.getLogger("auto-attack")
    previous_level = logger.level
    logger.addHandler(capture)
    logger.setLevel(logging.DEBUG)
    try:
        x_adv, y_adv = adversary.run_standard_evaluation(x.to(device), y.to(device), batch_size=batch_size)
    finally:
        logger.removeHandler(capture)
        logger.setLevel(previous_level)
    capture.progress.update(capture.progress.total - capture.progress.n)  # later attacks skip when none is left
    capture.progress.close()
    flags = {name: any(pattern in m.lower() for m in capture.warnings) for name, pattern in FLAG_PATTERNS.items()}
    per_attack: dict[str, float] = {}
    for m in capture.debug:
        if m.startswith("robust accuracy after "):
            name = m.split("robust accuracy after ")[1].split(":")[0].strip().lower()
            per_attack[name] = float(m.split(":")[1].split("%")[0]) / 100.0
    return AutoAttackResult(x_adv.detach().cpu(), y_adv.detach().cpu(), flags, capture.warnings, per_attack)
