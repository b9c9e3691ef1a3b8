"""Loading any classifier the pipeline produced from its JSON description.

Every classifier artifact is a JSON file (``results/<dataset>/models/<name>.json``) whose ``kind`` says how
to build it: ``base`` (an architecture + a weights file next to it), or composites registered by other
modules (mixtures, mixing networks, …) that reference base models by path. The returned module maps
inputs to logits (or log-probabilities) and is in eval mode with frozen parameters.
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
    return model


def load_classifier(spec_path: str | Path, device: torch.device | str = "cpu") -> nn.Module:
    """Build the classifier described by ``spec_path``, on ``device``, in eval mode, frozen."""
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
    return model


def load_spec(spec_path: str | Path) -> dict[str, Any]:
    return read_json(spec_path)


def _import_kind_modules() -> None:
    """Import the modules that register classifier kinds (kept lazy so loading a base model stays light)."""
    import importlib

    from .registry import modules_applying

    for name in modules_applying("register_kind"):
        importlib.import_module(name)
