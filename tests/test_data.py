"""Data stage: fixed splits, value ranges, determinism, torchvision code paths on stand-in files."""

import gzip
import pickle
import struct

import numpy as np
import pytest
import torch

from tradeoff import data
from tradeoff.io import ArtifactError


def test_digits_splits_are_disjoint_complete_and_scaled():
    t = data.make_digits(n_calib=300, n_test=360, seed=0)
    sizes = {s: t[f"y_{s}"].shape[0] for s in data.SPLITS}
    assert sizes == {"train": 1797 - 660, "calib": 300, "test": 360}
    x = torch.cat([t[f"x_{s}"] for s in data.SPLITS])
    assert x.shape[1:] == (1, 8, 8)
    assert float(x.min()) == 0.0 and float(x.max()) == 1.0
    # the three splits together are a permutation of the full data set (no point used twice)
    from sklearn.datasets import load_digits

    ref = torch.tensor(load_digits().images, dtype=torch.float32).unsqueeze(1) / 16
    key = lambda a: sorted(map(bytes, a.flatten(1).mul(16).round().to(torch.uint8).numpy()))  # noqa: E731
    assert key(x) == key(ref)


def test_splits_depend_on_seed_only():
    a, b, c = (data.make_digits(100, 100, s) for s in (3, 3, 4))
    assert torch.equal(a["x_test"], b["x_test"])
    assert not torch.equal(a["x_test"], c["x_test"])


def test_tsipras_marginals():
    t = data.make_tsipras(p=0.9, eta=0.2, d=50, n_train=20000, n_calib=10, n_test=10, seed=1)
    x, y = t["x_train"].double(), t["y_train"]
    sign = (2 * y - 1).double()
    agree = (x[:, 0] == sign).double().mean().item()
    assert abs(agree - 0.9) < 4 * (0.09 / 20000) ** 0.5
    weak = (x[:, 1:] * sign[:, None]).mean().item()
    assert abs(weak - 0.2) < 0.01
    assert set(torch.unique(x[:, 0]).tolist()) == {-1.0, 1.0}


def test_gauss3_shapes_and_class_2_is_rare():
    t = data.make_gauss3(3000, 10, 10, spread=0.3, seed=0)
    assert t["x_train"].shape == (3000, 2)
    counts = torch.bincount(t["y_train"], minlength=3).double() / 3000
    assert counts[2] < counts[0] / 3 and counts[2] < counts[1] / 3


def test_prepare_and_load_roundtrip_detects_corruption(tmp_path):
    out = tmp_path / "digits" / "data.pt"
    splits = data.prepare("digits", {"n_calib": 50, "n_test": 50}, 0, out, {"seed": 0})
    loaded = data.load(out)
    assert loaded.num_classes == 10 and loaded.bounds == (0.0, 1.0)
    assert torch.equal(loaded.x("test"), splits.x("test"))
    out.write_bytes(out.read_bytes()[:1000])
    with pytest.raises(ArtifactError, match="data.pt"):
        data.load(out)


def _write_idx(path, array):
    dims = array.shape
    magic = 0x0800 + len(dims)
    with gzip.open(path, "wb") if str(path).endswith(".gz") else open(path, "wb") as fh:
        fh.write(struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in dims))
        fh.write(array.astype(np.uint8).tobytes())


def test_mnist_code_path_on_stand_in_files(tmp_path):
    raw = tmp_path / "mnist" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 120), ("t10k", 40)):
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)))
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", rng.integers(0, 10, (n,)))
    t = data.make_torchvision("mnist", tmp_path, n_calib=20, n_test=30, seed=0, download=False)
    assert t["x_train"].shape == (100, 1, 28, 28) and t["x_train"].dtype == torch.uint8
    assert t["x_calib"].shape == (20, 1, 28, 28) and t["x_test"].shape == (30, 1, 28, 28)


@pytest.mark.parametrize("name,classes,folder,key", [
    ("cifar10", 10, "cifar-10-batches-py", "labels"), ("cifar100", 100, "cifar-100-python", "fine_labels")])
def test_cifar_code_path_on_stand_in_files(tmp_path, monkeypatch, name, classes, folder, key):
    import torchvision

    base = tmp_path / name / folder
    base.mkdir(parents=True)
    rng = np.random.default_rng(0)

    def batch(n):
        return {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), key: rng.integers(0, classes, n).tolist()}

    names = ([f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]) if name == "cifar10" else ["train", "test"]
    for fname in names:
        with open(base / fname, "wb") as fh:
            pickle.dump(batch(20), fh)
    meta_name, meta_key = ("batches.meta", "label_names") if name == "cifar10" else ("meta", "fine_label_names")
    with open(base / meta_name, "wb") as fh:
        pickle.dump({meta_key: [str(i) for i in range(classes)]}, fh)
    cls = getattr(torchvision.datasets, "CIFAR10" if name == "cifar10" else "CIFAR100")
    # stand-in files have other checksums than the real archives
    monkeypatch.setattr(cls, "_check_integrity", lambda self: True)
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda *a, **k: True)
    t = data.make_torchvision(name, tmp_path, n_calib=10, n_test=None, seed=0, download=False)
    n_train = 100 if name == "cifar10" else 20
    assert t["x_train"].shape == (n_train - 10, 3, 32, 32)
    assert t["x_test"].shape == (20, 3, 32, 32)
    assert int(t["y_train"].max()) < classes
    # channels-first conversion keeps pixel values: compare one image with the raw pickle
    raw = pickle.load(open(base / names[-1], "rb"))["data"][0].reshape(3, 32, 32)
    assert np.array_equal(t["x_test"][0].numpy(), raw)


@pytest.mark.parametrize("name", ["mnist", "cifar10", "cifar100"])
def test_missing_torchvision_dataset_names_the_folder(tmp_path, name):
    with pytest.raises(data.DatasetUnavailable) as info:
        data.make_torchvision(name, tmp_path / "nowhere", n_calib=10, n_test=None, seed=0, download=False)
    message = str(info.value)
    assert str((tmp_path / "nowhere" / name).resolve()) in message
    assert "put it in" in message
