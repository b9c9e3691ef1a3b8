"""The paper presets as Snakemake sees them: config.yaml with a preset merged over it."""

from __future__ import annotations

import copy

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


def preset_config(root, name: str) -> dict:
    default = yaml.safe_load((root / "config.yaml").read_text())
    return merge(copy.deepcopy(default), yaml.safe_load((root / "presets" / f"{name}.yaml").read_text()))
