"""Loading any classifier the pipeline produced from its JSON description.

Every classifier artifact is a JSON file (``results/<dataset>/models/<name>.json``) whose ``kind`` says how
to build it: ``base`` (an architecture + a weights file next to it), or composites registered by other
modules (mixtures, mixing networks, …) that reference base models by path. The returned module maps
inputs to logits (or log-probabilities) and is in eval mode with frozen parameters.

A classifier with a NaN or infinite weight (a diverged run, a corrupt copy, a bad zoo checkpoint) is refused
when loaded, naming its file: evaluated, it would "lose" every attack and no table would notice. Given a
probe batch, the loader also refuses a classifier whose outputs on it are not finite (:func:`check_outputs`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .io import ArtifactError, load_torch, read_json
from .models import build_model

Loader = Callable[[Mapping[str, Any], Path, torch.device], nn.Module]
LOADERS: dict[str, Loader] = {}


def register_kind(kind: str) -> Callable[[Loader], Loader]:
    """Decorator adding a loader for classifier descriptions of ``kind``."""

    def deco(fn: Loader) -> Loader:
        LOADERS[kind] = fn
        return fn

    return deco


def weights_path(spec_path: str | Path) -> Path:
    """The weights file of a base model description (same name, ``.pt``)."""
    return Path(spec_path).with_suffix(".pt")


@register_kind("base")
def _load_base(spec: Mapping[str, Any], spec_path: Path, device: torch.device) -> nn.Module:
    model = build_model(spec["arch"], spec["dataset"], int(spec["num_classes"]), spec["input_shape"],
                        spec.get("arch_options"))
    state = load_torch(weights_path(spec_path), expected_sha256=spec.get("sha256"))
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise ArtifactError(
            f"{weights_path(spec_path)}: weights do not fit architecture {spec['arch']}: {exc}") from exc
    check_weights(model, weights_path(spec_path))
    return model


def check_weights(model: nn.Module, path: str | Path) -> None:
    """Raise :class:`ArtifactError` naming ``path`` and the first tensor with a NaN or infinite entry among
    ``model``'s parameters and floating-point buffers (e.g. batch-norm statistics)."""
    tensors = [*model.named_parameters(), *model.named_buffers()]
    for name, tensor in tensors:
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise ArtifactError(f"{path}: non-finite weights ({bad} of {tensor.numel()} entries of {name} are "
                                "NaN or infinite); refusing to evaluate this classifier")


@torch.no_grad()
def check_outputs(model: nn.Module, x: torch.Tensor, path: str | Path) -> None:
    """Raise :class:`ArtifactError` naming ``path`` when ``model``'s outputs on the batch ``x`` (on the model's
    device) hold a NaN or infinite entry."""
    out = model(x)
    if not bool(torch.isfinite(out).all()):
        rows = int((~torch.isfinite(out)).any(dim=1).sum())
        raise ArtifactError(f"{path}: non-finite outputs on {rows} of the first {x.shape[0]} test points; "
                            "refusing to evaluate this classifier")


def load_classifier(spec_path: str | Path, device: torch.device | str = "cpu",
                    probe: torch.Tensor | None = None) -> nn.Module:
    """Build the classifier described by ``spec_path``, on ``device``, in eval mode, frozen.

    Guarantees: every weight is finite (:func:`check_weights`) and, given ``probe`` (a batch of inputs, e.g.
    the first test points), every output on it is finite (:func:`check_outputs`); otherwise
    :class:`ArtifactError` naming the file, before any evaluation."""
    path = Path(spec_path)
    spec = read_json(path)
    kind = spec.get("kind", "base")
    if kind not in LOADERS:
        _import_kind_modules()
    if kind not in LOADERS:
        raise ArtifactError(f"{path}: unknown classifier kind '{kind}'")
    model = LOADERS[kind](spec, path, torch.device(device))
    model.to(device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    check_weights(model, path)
    if probe is not None:
        check_outputs(model, probe.to(device), path)
    return model


def load_spec(spec_path: str | Path) -> dict[str, Any]:
    return read_json(spec_path)


def _import_kind_modules() -> None:
    """Import the modules that register classifier kinds (kept lazy so loading a base model stays light)."""
    import importlib

    from .registry import modules_applying

    for name in modules_applying("register_kind"):
        importlib.import_module(name)
