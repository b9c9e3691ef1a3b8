"""Base models from the RobustBench model zoo (optional: ``pip install -e '.[zoo]'``).

The mixing papers mix RobustBench models (Bai et al. 2023, 2024). :func:`fetch` downloads a named model once through
``robustbench.utils.load_model`` (which caches the checkpoint under ``model_dir``), checks its weights
against an expected SHA-256 when the config gives one, and returns the state dict to be re-saved as a
plain tensor file; the classifier kind ``zoo`` rebuilds the architecture from RobustBench's model
registry WITHOUT downloading and loads those weights with ``weights_only=True``. Only the one-time fetch
goes through RobustBench's own checkpoint loading; every later load is the pipeline's verified one.

RobustBench models take inputs in [0, 1] and normalize inside, as the pipeline's own models do.
:class:`ZooClassifier` adds what the mixing network needs: two intermediate feature maps (forward hooks on
two named submodules, e.g. ``block1``/``block2`` of a WideResNet, ``layer.0``/``layer.1`` of DeepMind's
WideResNets) and their channel counts.

Failures a user can fix (package missing, offline, unknown name, checksum mismatch) raise
:class:`ZooUnavailable` / :class:`ZooChecksumError` with a one-line message.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .classifiers import register_kind, weights_path
from .io import ArtifactError, load_torch, sha256_file
from .zoo_checks import ZOO_DATASETS as DATASETS  # cifar10 / cifar100 → number of classes

THREAT_MODELS = ("Linf", "L2", "corruptions")
INPUT_SHAPE = (3, 32, 32)
FEATURE_CANDIDATES: tuple[tuple[str, str], ...] = (
    ("block1", "block2"),      # WideResNet (RobustBench's and the TRADES code's): outputs of the first two stages
    ("layer.0", "layer.1"),    # DeepMind WideResNet / PreActResNet (DMWideResNet.layer is a Sequential)
    ("layer1", "layer2"),      # ResNet / PreActResNet
)
INSTALL_HINT = "pip install -e '.[zoo]' (robustbench==1.1.1 from PyPI)"


class ZooUnavailable(RuntimeError):
    """A zoo model cannot be obtained (package missing, offline, unknown name); the message is one line."""


class ZooChecksumError(ArtifactError):
    """The downloaded weights are not the ones the config pins."""


def _one_line(text: str, limit: int = 400) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _alias_autoattack() -> None:
    """Make ``import autoattack`` resolve to ``pyautoattack`` when the former is absent.

    RobustBench 1.1.1 (PyPI) declares ``pyautoattack`` as its AutoAttack dependency but its package
    ``__init__`` imports the upstream module name ``autoattack`` (``robustbench/eval.py``), which
    ``pyautoattack`` installs as ``pyautoattack``; without this alias ``import robustbench`` fails. The
    pipeline never calls RobustBench's own evaluation, so only that import needs to succeed.
    """
    import importlib.util

    if importlib.util.find_spec("autoattack") is not None:
        return
    try:
        import pyautoattack
        import pyautoattack.state
    except ImportError:
        return
    sys.modules.setdefault("autoattack", pyautoattack)
    sys.modules.setdefault("autoattack.state", pyautoattack.state)


def _robustbench() -> tuple[Any, Any, Any, Any]:
    """``(robustbench.utils, model_dicts, enums, timm)``; :class:`ZooUnavailable` if one is missing."""
    _alias_autoattack()
    try:
        import timm
        from robustbench import utils as rb_utils
        from robustbench.model_zoo import enums, model_dicts
    except ImportError as exc:
        raise ZooUnavailable(f"RobustBench is not installed ({_one_line(exc, 120)}): {INSTALL_HINT}") from None
    return rb_utils, model_dicts, enums, timm


def _check_request(dataset: str, threat_model: str) -> None:
    if dataset not in DATASETS:
        raise ZooUnavailable(f"RobustBench has no {dataset} models (only {', '.join(DATASETS)})")
    if threat_model not in THREAT_MODELS:
        raise ZooUnavailable(f"unknown RobustBench threat model '{threat_model}' ({', '.join(THREAT_MODELS)})")


def _timm_name(name: str, dataset: str, threat_model: str) -> str:
    # RobustBench 1.1 serves some models through timm under this name (robustbench.utils.load_model)
    return f"{name.lower().replace('-', '_')}_{dataset}_{threat_model.lower()}"


def architecture(name: str, dataset: str, threat_model: str) -> nn.Module:
    """The untrained architecture of RobustBench model ``name`` (no download)."""
    _check_request(dataset, threat_model)
    _, model_dicts, enums, timm = _robustbench()
    ds, tm = enums.BenchmarkDataset(dataset), enums.ThreatModel(threat_model)
    timm_name = _timm_name(name, dataset, threat_model)
    if timm.is_model(timm_name):
        return timm.create_model(timm_name, num_classes=DATASETS[dataset], pretrained=False)
    try:
        entry = model_dicts[ds][tm][name]
    except KeyError:
        raise ZooUnavailable(f"RobustBench has no model '{name}' for {dataset}/{threat_model} "
                             "(names as on robustbench.github.io)") from None
    return entry["model"]()


def _download(name: str, dataset: str, threat_model: str, model_dir: Path) -> nn.Module:
    """RobustBench's own loader: downloads the checkpoint into ``model_dir`` unless it is there."""
    architecture(name, dataset, threat_model)  # unknown names fail here, before any network access
    rb_utils = _robustbench()[0]
    return rb_utils.load_model(model_name=name, model_dir=str(model_dir), dataset=dataset,
                               threat_model=threat_model)


def checkpoint_files(name: str, dataset: str, threat_model: str, model_dir: Path) -> list[Path]:
    """The files RobustBench keeps for a model under ``model_dir`` (one, or one per ensemble member)."""
    folder = Path(model_dir) / dataset / threat_model
    return sorted(p for p in folder.glob(f"{name}.pt*") if p.is_file())


def state_digest(state: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 of a state dict's content (names, dtypes, shapes, bytes in name order). Unlike the hash of a
    file it does not depend on how the weights were serialized, so it pins the same model whether it came
    as a Google-Drive checkpoint, a timm download or the re-saved tensor file."""
    h = hashlib.sha256()
    for key in sorted(state):
        t = state[key].detach().cpu().contiguous()
        h.update(key.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def fetch(name: str, dataset: str, threat_model: str, model_dir: str | Path,
          expected_digest: str | None = None) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Download (once) RobustBench model ``name`` and return ``(state_dict, info)``.

    ``info`` holds the weights' content digest (:func:`state_digest`) and the SHA-256 of every checkpoint
    file RobustBench stored. Guarantee: if ``expected_digest`` is given, the returned weights have exactly
    that digest, else :class:`ZooChecksumError`. Any failure to obtain the model (package missing, no
    network, unknown name) raises :class:`ZooUnavailable` with one line saying what to do.
    """
    model_dir = Path(model_dir)
    try:
        net = _download(name, dataset, threat_model, model_dir)
    except ZooUnavailable:
        raise
    except Exception as exc:  # noqa: BLE001 - RobustBench/gdown/requests raise many types; all mean "not fetched"
        raise ZooUnavailable(
            f"could not fetch RobustBench model '{name}' ({dataset}, {threat_model}) into {model_dir}: "
            f"{type(exc).__name__}: {_one_line(exc, 240)} — offline? run the zoo rule where there is "
            f"internet, or put RobustBench's checkpoint at {model_dir / dataset / threat_model / (name + '.pt')}"
        ) from None
    state = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
    digest = state_digest(state)
    if expected_digest and digest != expected_digest.lower():
        raise ZooChecksumError(f"RobustBench model '{name}': weights have SHA-256 {digest}, the config pins "
                               f"{expected_digest} (a different or corrupted download)")
    files = {str(p): sha256_file(p) for p in checkpoint_files(name, dataset, threat_model, model_dir)}
    return state, {"weights_digest": digest, "source_files": files}


def resolve_features(net: nn.Module, features: Sequence[str] | None) -> tuple[str, str] | None:
    """Names of the two submodules whose outputs are the mixing network's inputs: ``features`` if given
    (checked to exist), else the first of :data:`FEATURE_CANDIDATES` present in ``net``, else None."""
    names = dict(net.named_modules())
    if features:
        missing = [f for f in features if f not in names]
        if len(features) != 2 or missing:
            raise ValueError(f"features must name two submodules of the model; not found: {missing or features}")
        return str(features[0]), str(features[1])
    for pair in FEATURE_CANDIDATES:
        if all(p in names for p in pair):
            return pair
    return None


class ZooClassifier(nn.Module):
    """A RobustBench model as a pipeline classifier: logits from [0, 1] inputs, and two feature maps.

    ``forward_features`` returns the outputs of the two named submodules (captured by forward hooks, so
    gradients flow through them as through the logits).
    """

    def __init__(self, net: nn.Module, features: Sequence[str] | None = None):
        super().__init__()
        self.net = net
        self.feature_names = resolve_features(net, features)
        self._channels: tuple[int, int] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        return out[0] if isinstance(out, (tuple, list)) else out

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        if self.feature_names is None:
            raise ValueError("no known feature modules in this zoo model: name two in its config entry "
                             "(zoo.models.<id>.features), e.g. [block1, block2]")
        modules = dict(self.net.named_modules())
        captured: dict[str, torch.Tensor] = {}
        hooks = [modules[n].register_forward_hook(
            lambda _m, _i, out, n=n: captured.__setitem__(n, out[0] if isinstance(out, (tuple, list)) else out))
            for n in self.feature_names]
        try:
            logits = self.forward(x)
        finally:
            for h in hooks:
                h.remove()
        return logits, [captured[n] for n in self.feature_names]

    @property
    def feature_channels(self) -> tuple[int, int]:
        """Channels of the two feature maps (measured once on a zero image)."""
        if self._channels is None:
            p = next(self.net.parameters())
            with torch.no_grad():
                _, feats = self.forward_features(torch.zeros(1, *INPUT_SHAPE, device=p.device, dtype=p.dtype))
            self._channels = (int(feats[0].shape[1]), int(feats[1].shape[1]))
        return self._channels


@register_kind("zoo")
def _load_zoo(spec: Mapping[str, Any], spec_path: Path, device: torch.device) -> nn.Module:
    net = architecture(spec["robustbench"]["name"], spec["dataset"], spec["robustbench"]["threat_model"])
    state = load_torch(weights_path(spec_path), expected_sha256=spec.get("sha256"))
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        raise ArtifactError(f"{weights_path(spec_path)}: weights do not fit RobustBench's "
                            f"{spec['robustbench']['name']}: {_one_line(exc, 200)}") from exc
    return ZooClassifier(net, spec.get("features"))
