"""The paper presets as Snakemake sees them: config.yaml with a preset's layers merged over it in order."""

from __future__ import annotations

import yaml

PRESETS = ["cifar10", "cifar100", "mnist"]


def merge(base: dict, update: dict) -> dict:
    """Snakemake's --configfile merge: nested dicts key by key, anything else replaced."""
    for k, v in update.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            merge(base[k], v)
        else:
            base[k] = v
    return base


def preset_files(root, name: str) -> list[str]:
    """The config files of preset ``name`` in the order Snakemake takes them: its base layer (``base:``), then
    the preset (paths relative to ``root``)."""
    preset = yaml.safe_load((root / "presets" / f"{name}.yaml").read_text())
    base = preset.get("base")
    return [*(preset_files(root, base) if base else []), f"presets/{name}.yaml"]


def preset_config(root, name: str) -> dict:
    config = yaml.safe_load((root / "config.yaml").read_text())
    for path in preset_files(root, name):
        merge(config, yaml.safe_load((root / path).read_text()))
    return config
