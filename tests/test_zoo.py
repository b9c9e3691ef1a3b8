"""RobustBench zoo models as classifiers (kind ``zoo``), without network: a stand-in ``robustbench`` package
with RobustBench's module layout serves a small WideResNet. Checks: the failure paths (package missing,
offline, unknown name, wrong checksum) stop with one line; a fetched model reloads with the same outputs, is
refused after tampering, exposes the two feature maps of the mixing network and can be mixed; config checks.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from tradeoff import zoo
from tradeoff.classifiers import load_classifier
from tradeoff.commands.zoo import cmd_zoo_fetch
from tradeoff.config import ConfigError
from tradeoff.io import ArtifactError, read_json, sha256_file
from tradeoff.mixing.model import MixedClassifier, MixingNetwork, NetworkOptions
from tradeoff.models import build_model
from tradeoff.zoo_checks import check_zoo

torch.set_num_threads(1)

FAKE_MODULES = {
    "robustbench/__init__.py": "",
    "robustbench/model_zoo/enums.py": """
        from enum import Enum

        class BenchmarkDataset(Enum):
            cifar_10 = "cifar10"
            cifar_100 = "cifar100"
            imagenet = "imagenet"

        class ThreatModel(Enum):
            Linf = "Linf"
            L2 = "L2"
            corruptions = "corruptions"
    """,
    "robustbench/model_zoo/__init__.py": """
        from .enums import BenchmarkDataset, ThreatModel

        def tiny():
            from tradeoff.models import build_model
            return build_model("wrn34_10", "cifar10", 10, (3, 32, 32), {"depth": 10, "widen": 1})

        model_dicts = {BenchmarkDataset.cifar_10: {ThreatModel.Linf: {"Tiny2024": {"model": tiny, "gdrive_id": "x"}}},
                       BenchmarkDataset.cifar_100: {ThreatModel.Linf: {}}}
    """,
    "robustbench/utils.py": """
        import os
        from pathlib import Path

        import torch

        from robustbench.model_zoo import model_dicts
        from robustbench.model_zoo.enums import BenchmarkDataset, ThreatModel

        def load_model(model_name, model_dir, dataset, threat_model):
            if os.environ.get("FAKE_RB_OFFLINE"):
                import requests
                raise requests.exceptions.ConnectionError(
                    "HTTPSConnectionPool(host='drive.google.com', port=443): Max retries exceeded\\n"
                    "(Caused by NewConnectionError: [Errno 101] Network is unreachable)")
            model = model_dicts[BenchmarkDataset(dataset)][ThreatModel(threat_model)][model_name]["model"]()
            torch.manual_seed(int(os.environ.get("FAKE_RB_SEED", "1")))  # the "pretrained" weights
            with torch.no_grad():
                for p in model.parameters():
                    p.normal_(0, 0.1)
            path = Path(model_dir) / dataset / threat_model / f"{model_name}.pt"
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.save({"state_dict": model.state_dict()}, path)
            return model.eval()
    """,
    "timm.py": """
        def is_model(name):
            return False
    """,
}


@pytest.fixture
def fake_robustbench(tmp_path, monkeypatch):
    """Put the stand-in package first on the import path; forget it afterwards."""
    root = tmp_path / "fakes"
    for rel, text in FAKE_MODULES.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    monkeypatch.syspath_prepend(str(root))
    before = set(sys.modules)
    for name in [m for m in sys.modules if m == "timm" or m.startswith("robustbench")]:
        monkeypatch.delitem(sys.modules, name)
    yield root
    for name in set(sys.modules) - before:
        if name == "timm" or name.startswith("robustbench"):
            del sys.modules[name]


def fetch_args(tmp_path: Path, **entry) -> argparse.Namespace:
    return argparse.Namespace(dataset="cifar10", name="tiny", model_dir=str(tmp_path / "rb"),
                              out=str(tmp_path / "models" / "tiny.json"),
                              entry={"name": "Tiny2024", "threat_model": "Linf", "sha256": None, "features": None,
                                     **entry})


def test_missing_package_is_one_line(tmp_path, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "robustbench", None)  # import robustbench → ImportError
    with pytest.raises(zoo.ZooUnavailable) as info:
        zoo.architecture("Standard", "cifar10", "Linf")
    assert "\n" not in str(info.value) and "pip install -e '.[zoo]'" in str(info.value)
    with caplog.at_level(logging.ERROR, logger="tradeoff"), pytest.raises(SystemExit) as stop:
        cmd_zoo_fetch(fetch_args(tmp_path))
    assert stop.value.code == 2
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "\n" not in errors[0] and "not installed" in errors[0]
    assert not (tmp_path / "models" / "tiny.json").exists()


@pytest.mark.slow
def test_offline_cli_prints_one_line_and_writes_nothing(tmp_path, fake_robustbench):
    src = Path(__file__).resolve().parents[1] / "src"  # this checkout's package, whatever is installed
    env = {"PATH": str(Path(sys.executable).parent), "PYTHONPATH": f"{fake_robustbench}{os.pathsep}{src}",
           "FAKE_RB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    out = tmp_path / "models" / "tiny.json"
    proc = subprocess.run(
        [sys.executable, "-m", "tradeoff", "zoo", "--dataset", "cifar10", "--name", "tiny", "--entry",
         json.dumps({"name": "Tiny2024", "threat_model": "Linf"}), "--model-dir", str(tmp_path / "rb"),
         "--out", str(out)], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert "Traceback" not in proc.stderr
    errors = [line for line in lines if "ERROR" in line]
    assert len(errors) == 1, proc.stderr
    assert "Tiny2024" in errors[0] and "offline?" in errors[0] and "Network is unreachable" in errors[0]
    assert not out.exists() and not out.with_suffix(".pt").exists()


def test_unknown_name_fails_before_any_download(tmp_path, fake_robustbench):
    with pytest.raises(zoo.ZooUnavailable, match="no model 'Nope'"):
        zoo.fetch("Nope", "cifar10", "Linf", tmp_path / "rb")
    assert not (tmp_path / "rb").exists()
    with pytest.raises(zoo.ZooUnavailable, match="no mnist models"):
        zoo.fetch("Tiny2024", "mnist", "Linf", tmp_path / "rb")


def test_fetch_reload_verify_and_mix(tmp_path, fake_robustbench):
    args = fetch_args(tmp_path)
    cmd_zoo_fetch(args)
    spec = read_json(args.out)
    assert spec["kind"] == "zoo" and spec["num_classes"] == 10 and spec["features"] == ["block1", "block2"]
    # the recorded checksums are those of the downloaded checkpoint and of the weights' content
    [(source, source_sha)] = spec["source_files"].items()
    assert Path(source) == tmp_path / "rb" / "cifar10" / "Linf" / "Tiny2024.pt"
    assert sha256_file(source) == source_sha
    reference = zoo.architecture("Tiny2024", "cifar10", "Linf")
    reference.load_state_dict(torch.load(source, weights_only=True)["state_dict"])
    assert spec["weights_digest"] == zoo.state_digest(reference.state_dict())

    model = load_classifier(args.out)
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), reference.eval()(x))
        logits, feats = model.forward_features(x)
    assert torch.equal(logits, model(x))
    assert model.feature_channels == (16, 32) == tuple(f.shape[1] for f in feats)

    # usable as the robust model of the mixing stage: the mixing network reads its feature maps
    g = build_model("wrn34_10", "cifar10", 10, (3, 32, 32), {"depth": 10, "widen": 1}).eval()
    opts = NetworkOptions.from_mapping({"width": 8, "alpha_min": 0.84, "alpha_max": 0.99})
    mixed = MixedClassifier(g, model, MixingNetwork(g.feature_channels, model.feature_channels, opts), "prob",
                            1.2, 0.5).eval()
    res = mixed.forward_all(x)
    assert bool(((res.alpha >= 0.84 - 1e-6) & (res.alpha <= 0.99 + 1e-6)).all())
    assert torch.allclose(torch.logsumexp(res.out, 1), torch.zeros(3), atol=1e-5)

    # a pinned digest is enforced: the same weights pass, other weights are refused in one line
    cmd_zoo_fetch(fetch_args(tmp_path, sha256=spec["weights_digest"]))
    with pytest.raises(zoo.ZooChecksumError) as info:
        cmd_zoo_fetch(fetch_args(tmp_path, sha256="0" * 64))
    assert "\n" not in str(info.value) and spec["weights_digest"] in str(info.value)

    # the re-saved weights are verified at every load
    weights = Path(args.out).with_suffix(".pt")
    weights.write_bytes(weights.read_bytes()[:-10])
    with pytest.raises(ArtifactError, match="checksum"):
        load_classifier(args.out)


def test_state_digest_depends_on_content_only():
    a = {"w": torch.arange(6.0).reshape(2, 3), "b": torch.zeros(3, dtype=torch.bfloat16)}
    b = {"b": a["b"].clone(), "w": a["w"].clone()}  # same content, other order
    assert zoo.state_digest(a) == zoo.state_digest(b)
    b["w"][0, 0] = 1e-7
    assert zoo.state_digest(a) != zoo.state_digest(b)
    assert zoo.state_digest({"w": a["w"].reshape(3, 2)}) != zoo.state_digest({"w": a["w"]})


def test_feature_modules_are_found_or_named():
    class DM(nn.Module):  # DeepMind-style: stages in a Sequential called `layer`
        def __init__(self):
            super().__init__()
            self.layer = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 6, 3, stride=2, padding=1))
            self.fc = nn.Linear(6, 10)

        def forward(self, x):
            return self.fc(self.layer(x).mean((2, 3)))

    wrapped = zoo.ZooClassifier(DM())
    assert wrapped.feature_names == ("layer.0", "layer.1") and wrapped.feature_channels == (4, 6)
    with pytest.raises(ValueError, match="not found"):
        zoo.ZooClassifier(DM(), ["layer.0", "nope"])
    plain = zoo.ZooClassifier(nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10)))
    assert plain(torch.rand(2, 3, 32, 32)).shape == (2, 10)  # fixed-α mixing needs no feature maps
    with pytest.raises(ValueError, match="zoo.models.<id>.features"):
        plain.forward_features(torch.rand(2, 3, 32, 32))


@pytest.mark.parametrize("dataset,models,key", [
    ("mnist", {}, "zoo.models"),
    ("cifar10", {"standard": {}}, "zoo.models.standard"),
])
def test_config_check_names_the_key(dataset, models, key):
    config = {"dataset": dataset, "models": models, "zoo": {"models": {"standard": {"name": "Standard"}}}}
    with pytest.raises(ConfigError) as info:
        check_zoo(config)
    assert str(info.value).startswith(f"config error at {key}:") and "\n" not in str(info.value)
    check_zoo({"dataset": "digits", "models": {}, "zoo": {"models": {}, "dir": "x"}})  # none: nothing to check
