"""Dataset registry: embedded data (digits), synthetic data (tsipras, gauss3) and torchvision presets.

Every dataset is turned into one artifact holding fixed train / calibration / test splits drawn from a
seed. Image datasets have values in [0, 1] (``bounds == (0, 1)``); the synthetic ones live in R^d and
have ``bounds is None`` (attacks then do not clip).

The calibration split is held out from training; it is used to fit the mixing network and to choose
mixing weights, never to report results.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .data_download import DatasetUnavailable
from .io import ArtifactError, load_torch, read_json, save_torch, sidecar, write_json

SPLITS = ("train", "calib", "test")
TORCHVISION_DATASETS = {
    "mnist": {"class": "MNIST", "shape": (1, 28, 28), "classes": 10, "files": "MNIST/raw/*-ubyte(.gz)",
              "url": "https://ossci-datasets.s3.amazonaws.com/mnist/"},
    "cifar10": {"class": "CIFAR10", "shape": (3, 32, 32), "classes": 10, "files": "cifar-10-batches-py/",
                "url": "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"},
    "cifar100": {"class": "CIFAR100", "shape": (3, 32, 32), "classes": 100, "files": "cifar-100-python/",
                 "url": "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"},
}
DATASETS = ("digits", "tsipras", "gauss3", *TORCHVISION_DATASETS)


@dataclass
class Splits:
    """Tensors of one dataset: ``x_<split>`` float32 and ``y_<split>`` int64 for train, calib, test."""

    name: str
    tensors: dict[str, torch.Tensor]
    num_classes: int
    input_shape: tuple[int, ...]
    bounds: tuple[float, float] | None
    meta: dict[str, Any]

    def x(self, split: str) -> torch.Tensor:
        x = self.tensors[f"x_{split}"]
        return x.float().div_(255.0) if x.dtype == torch.uint8 else x

    def y(self, split: str) -> torch.Tensor:
        return self.tensors[f"y_{split}"]

    def size(self, split: str) -> int:
        return int(self.tensors[f"y_{split}"].shape[0])

    def whole_test(self) -> str:
        """The split holding the whole official test set: ``test_all`` when ``test`` is a seeded subsample of
        it (a torchvision dataset with ``n_test`` below its size), else ``test`` itself."""
        return "test_all" if "y_test_all" in self.tensors else "test"


# ----------------------------------------------------------------------------------------------------------
# Generators
# ----------------------------------------------------------------------------------------------------------


def _split_indices(n: int, n_calib: int, n_test: int, seed: int) -> dict[str, np.ndarray]:
    if n_calib + n_test >= n:
        raise ValueError(f"n_calib ({n_calib}) + n_test ({n_test}) must be smaller than the {n} examples")
    perm = np.random.default_rng(seed).permutation(n)
    return {
        "test": np.sort(perm[:n_test]),
        "calib": np.sort(perm[n_test:n_test + n_calib]),
        "train": np.sort(perm[n_test + n_calib:]),
    }


def make_digits(n_calib: int, n_test: int, seed: int) -> dict[str, torch.Tensor]:
    """scikit-learn's 1,797 handwritten digits (8×8, values 0–16) scaled to [0, 1], as [N, 1, 8, 8]."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(digits.target, dtype=torch.int64)
    idx = _split_indices(len(y), n_calib, n_test, seed)
    return {f"{k}_{s}": t[torch.from_numpy(idx[s])] for s in SPLITS for k, t in (("x", x), ("y", y))}


def make_tsipras(p: float, eta: float, d: int, n_train: int, n_calib: int, n_test: int,
                 seed: int) -> dict[str, torch.Tensor]:
    """Tsipras et al.'s distribution: y ∈ {±1}; x1 = y w.p. p else −y; x2..x_{d+1} ~ N(ηy, 1).

    Labels are stored as class indices: class 0 ↔ y = −1, class 1 ↔ y = +1.
    """
    rng = np.random.default_rng(seed)
    out: dict[str, torch.Tensor] = {}
    for split, n in (("train", n_train), ("calib", n_calib), ("test", n_test)):
        y = rng.choice(np.array([-1.0, 1.0]), size=n)
        x1 = np.where(rng.random(n) < p, y, -y)
        weak = rng.normal(loc=eta * y[:, None], scale=1.0, size=(n, d))
        out[f"x_{split}"] = torch.tensor(np.column_stack([x1, weak]), dtype=torch.float32)
        out[f"y_{split}"] = torch.tensor((y > 0).astype(np.int64))
    return out


def make_gauss3(n_train: int, n_calib: int, n_test: int, spread: float, seed: int) -> dict[str, torch.Tensor]:
    """Three 2-D Gaussian classes with means on a unit-radius triangle and isotropic std ``spread``.

    Class 2 has a fifth of the mass of the others, so that robust training can sacrifice it (the
    situation in which robust inaccuracy appears).
    """
    rng = np.random.default_rng(seed)
    angles = np.array([np.pi / 2, np.pi / 2 + 2 * np.pi / 3, np.pi / 2 + 4 * np.pi / 3])
    means = np.column_stack([np.cos(angles), np.sin(angles)])
    weights = np.array([1.0, 1.0, 0.2])
    weights /= weights.sum()
    out: dict[str, torch.Tensor] = {}
    for split, n in (("train", n_train), ("calib", n_calib), ("test", n_test)):
        y = rng.choice(3, size=n, p=weights)
        x = means[y] + spread * rng.normal(size=(n, 2))
        out[f"x_{split}"] = torch.tensor(x, dtype=torch.float32)
        out[f"y_{split}"] = torch.tensor(y, dtype=torch.int64)
    return out


def make_torchvision(name: str, root: str | Path, n_calib: int, n_test: int | None, seed: int,
                     download: bool = True, n_train: int | None = None) -> dict[str, torch.Tensor]:
    """MNIST / CIFAR-10 / CIFAR-100 through torchvision, as uint8 tensors [N, C, H, W].

    The calibration split is drawn from the official training set and the training split is the rest of it,
    or a seeded subsample of ``n_train`` points of the rest (a smoke run on a few hundred real images); the
    test split is the official test set, or a seeded subsample of ``n_test`` points of it (the whole set is then
    kept as ``test_all``, for the evaluations that run on every test image). Offline and without the files,
    raises
    :class:`DatasetUnavailable` naming the folder to put them in.
    """
    import torchvision

    spec = TORCHVISION_DATASETS[name]
    folder = Path(root) / name
    cls = getattr(torchvision.datasets, spec["class"])
    try:
        train = cls(str(folder), train=True, download=download)
        test = cls(str(folder), train=False, download=download)
    except (RuntimeError, OSError) as exc:  # torchvision raises these for missing files / no network
        raise DatasetUnavailable(
            f"dataset '{name}' is not in {folder.resolve()} and could not be downloaded ({exc}). "
            f"Offline: download {spec['url']} elsewhere and put it in {folder.resolve()}/ "
            f"(torchvision expects {spec['files']} there), then rerun."
        ) from exc
    x_all, y_all = _torchvision_arrays(train)
    x_test, y_test = _torchvision_arrays(test)
    perm = np.random.default_rng(seed).permutation(len(y_all))
    calib_idx, train_idx = np.sort(perm[:n_calib]), np.sort(perm[n_calib:])
    if n_train is not None and n_train < len(train_idx):
        train_idx = np.sort(np.random.default_rng(seed + 2).permutation(train_idx)[:n_train])
    whole: dict[str, torch.Tensor] = {}
    if n_test is not None and n_test < len(y_test):
        test_idx = np.sort(np.random.default_rng(seed + 1).permutation(len(y_test))[:n_test])
        whole = {"x_test_all": x_test, "y_test_all": y_test}
        x_test, y_test = x_test[test_idx], y_test[test_idx]
    return {
        "x_train": x_all[train_idx], "y_train": y_all[train_idx],
        "x_calib": x_all[calib_idx], "y_calib": y_all[calib_idx],
        "x_test": x_test, "y_test": y_test, **whole,
    }


def _torchvision_arrays(ds: Any) -> tuple[torch.Tensor, torch.Tensor]:
    data = ds.data
    x = torch.as_tensor(np.asarray(data), dtype=torch.uint8)
    if x.ndim == 3:  # MNIST: [N, H, W]
        x = x.unsqueeze(1)
    else:  # CIFAR: [N, H, W, C]
        x = x.permute(0, 3, 1, 2).contiguous()
    y = torch.as_tensor(np.asarray(ds.targets), dtype=torch.int64)
    return x, y


# ----------------------------------------------------------------------------------------------------------
# Artifact
# ----------------------------------------------------------------------------------------------------------


def describe(name: str, params: Mapping[str, Any]) -> tuple[int, tuple[int, ...], tuple[float, float] | None]:
    """(number of classes, input shape, value bounds) of a dataset."""
    if name == "digits":
        return 10, (1, 8, 8), (0.0, 1.0)
    if name == "tsipras":
        return 2, (int(params["d"]) + 1,), None
    if name == "gauss3":
        return 3, (2,), None
    if name in TORCHVISION_DATASETS:
        spec = TORCHVISION_DATASETS[name]
        return spec["classes"], spec["shape"], (0.0, 1.0)
    raise ValueError(f"unknown dataset '{name}' (known: {', '.join(DATASETS)})")


def build(name: str, params: Mapping[str, Any], seed: int) -> dict[str, torch.Tensor]:
    """Generate the split tensors of dataset ``name`` from its config section ``params``."""
    if name == "digits":
        return make_digits(int(params["n_calib"]), int(params["n_test"]), seed)
    if name == "tsipras":
        return make_tsipras(float(params["p"]), float(params["eta"]), int(params["d"]), int(params["n_train"]),
                            int(params["n_calib"]), int(params["n_test"]), seed)
    if name == "gauss3":
        return make_gauss3(int(params["n_train"]), int(params["n_calib"]), int(params["n_test"]),
                           float(params["spread"]), seed)
    if name in TORCHVISION_DATASETS:
        n_test, n_train = params.get("n_test"), params.get("n_train")
        return make_torchvision(name, params.get("root", "data"), int(params["n_calib"]),
                                None if n_test is None else int(n_test), seed,
                                download=bool(params.get("download", True)),
                                n_train=None if n_train is None else int(n_train))
    raise ValueError(f"unknown dataset '{name}' (known: {', '.join(DATASETS)})")


def prepare(name: str, params: Mapping[str, Any], seed: int, out: str | Path,
            provenance: Mapping[str, Any], download: Mapping[str, Any] | None = None) -> Splits:
    """Build dataset ``name`` and write it to ``out`` (+ a JSON sidecar with checksum, shapes and, for a
    downloaded dataset, the download stage's manifest ``download``: where the files came from, their digests)."""
    tensors = build(name, params, seed)
    num_classes, shape, bounds = describe(name, params)
    for split in SPLITS:
        got = tuple(tensors[f"x_{split}"].shape[1:])
        if got != shape:
            raise ValueError(f"dataset '{name}' split '{split}' has shape {got}, expected {shape}")
    digest = save_torch(tensors, out)
    meta = {
        "dataset": name, "num_classes": num_classes, "input_shape": list(shape),
        "bounds": None if bounds is None else list(bounds), "sha256": digest,
        "sizes": {s: int(tensors[f"y_{s}"].shape[0]) for s in (*SPLITS, "test_all") if f"y_{s}" in tensors},
        "params": dict(params), **({"download": dict(download)} if download else {}), **dict(provenance),
    }
    write_json(sidecar(out), meta)
    return Splits(name, tensors, num_classes, shape, bounds, meta)


def load(path: str | Path) -> Splits:
    """Load a dataset artifact written by :func:`prepare`, verified against its sidecar checksum."""
    meta = read_json(sidecar(path))
    tensors = load_torch(path, expected_sha256=meta["sha256"])
    for split in SPLITS:
        if f"x_{split}" not in tensors or f"y_{split}" not in tensors:
            raise ArtifactError(f"{path}: split '{split}' missing")
    bounds = meta["bounds"]
    return Splits(meta["dataset"], tensors, int(meta["num_classes"]), tuple(meta["input_shape"]),
                  None if bounds is None else (float(bounds[0]), float(bounds[1])), meta)
