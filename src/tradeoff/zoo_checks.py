"""Config check of the ``zoo`` section, kept free of torch so that validating a config stays fast."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .config import ConfigError, register_check

ZOO_DATASETS = {"cifar10": 10, "cifar100": 100}
"""Datasets of the pipeline that RobustBench has models for, with their class counts."""


@register_check
def check_zoo(config: Mapping[str, Any]) -> None:
    """Zoo models need a RobustBench dataset, and their ids must not shadow trained models."""
    models = (config.get("zoo") or {}).get("models") or {}
    if not models:
        return
    dataset = config.get("dataset")
    if dataset not in ZOO_DATASETS:
        raise ConfigError(f"config error at zoo.models: RobustBench has no {dataset} models "
                          f"(zoo models need dataset {' or '.join(ZOO_DATASETS)})")
    for zid in models:
        if zid in config.get("models", {}):
            raise ConfigError(f"config error at zoo.models.{zid}: the id is already a model in models")
