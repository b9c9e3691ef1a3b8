"""Config checks of the sizes a run asks for, before any job: every dataset's splits against the data it has,
and the certification and probabilistic-certification point counts against the run's test split. Free of
torch, like every config check.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .config import ConfigError, register_check

FIXED_SIZES = {
    "digits": {"examples": 1797},  # scikit-learn's digits: test, calibration and train are drawn from these
    "mnist": {"train": 60000, "test": 10000},  # LeCun et al. 1998: official training and test sets
    "cifar10": {"train": 50000, "test": 10000},  # Krizhevsky 2009
    "cifar100": {"train": 50000, "test": 10000},
}
"""The number of examples of each real dataset (the synthetic ones, tsipras and gauss3, draw as many as asked)."""


def test_size(config: Mapping[str, Any], dataset: str) -> int:
    """The number of points of the test split of ``dataset`` under ``config`` (its ``n_test``; for MNIST and
    CIFAR without ``n_test``, the official test set)."""
    section = config["data"].get(dataset) or {}
    n_test = section.get("n_test")
    if n_test is None:
        return FIXED_SIZES[dataset]["test"]
    return int(n_test)


@register_check
def check_split_sizes(config: Mapping[str, Any]) -> None:
    """Every split of a real dataset fits in the data: digits' calibration and test splits leave training
    points; MNIST's and CIFAR's calibration split leaves training points and their test split is at most the
    official test set."""
    data = config.get("data") or {}
    for name, sizes in FIXED_SIZES.items():
        section = data.get(name) or {}
        n_calib, n_test = int(section.get("n_calib") or 0), section.get("n_test")
        if "examples" in sizes:
            total = sizes["examples"]
            if n_calib + int(n_test or 0) >= total:
                raise ConfigError(f"config error at data.{name}.n_test: n_calib ({n_calib}) + n_test ({n_test}) "
                                  f"must be smaller than the {total:,} {name} examples (the rest is the training "
                                  "split)")
            continue
        if n_test is not None and int(n_test) > sizes["test"]:
            raise ConfigError(f"config error at data.{name}.n_test: {n_test} is more than the {sizes['test']:,} "
                              f"points of the {name} test set")
        if n_calib >= sizes["train"]:
            raise ConfigError(f"config error at data.{name}.n_calib: {n_calib} leaves none of the "
                              f"{sizes['train']:,} {name} training images to train on")


@register_check
def check_point_counts(config: Mapping[str, Any]) -> None:
    """``certify.points`` and ``probabilistic.points`` (null: the whole test split) are at most the number of
    test points of the run's dataset."""
    dataset = config["dataset"]
    n_test = test_size(config, dataset)
    for section in ("certify", "probabilistic"):
        points = (config.get(section) or {}).get("points")
        if points is not None and int(points) > n_test:
            raise ConfigError(f"config error at {section}.points: {points} points, but the {dataset} test split has "
                              f"{n_test} (data.{dataset}.n_test); use at most {n_test}, or null for all of them")
