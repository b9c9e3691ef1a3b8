"""Resumable per-point jobs of the ERA and mixing stages (era-robustness, era-composite, mixing-adaptive).

Each job is stopped part-way through a chunk (``--stop-after``), then
(a) rerun with the same arguments: it resumes and its records equal an uninterrupted run's, although the
    chunk it was stopped in is attacked again (same points, same draws);
(b) rerun after one parameter changed: the progress file is set aside as ``.partial.foreign`` with a log
    line, and the records equal a fresh run with the new parameter.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from tradeoff import data as data_mod
from tradeoff.cli import main
from tradeoff.io import read_records, save_torch, write_json, write_records
from tradeoff.mixing.model import MixedClassifier, MixingNetwork, NetworkOptions
from tradeoff.mixing.spec import spec_digest
from tradeoff.models import build_model
from tradeoff.resume import chunk_generator

torch.set_num_threads(1)

RT = ["--threads", "1", "--device", "cpu", "--no-progress"]
THREAT = json.dumps({"norm": "Linf", "eps": 0.3})
ROBUSTNESS = {"steps": 5, "step_rel": 0.25, "restarts": 2, "loss": "margin", "targets": 1}


def _base(d: Path, name: str, seed: int, splits: data_mod.Splits, arch: str, options: dict, steps: int) -> str:
    """A base model fitted for ``steps`` full-batch Adam steps of cross-entropy on the training split (a
    model that is neither constant nor robust everywhere, so the attacks have something to find)."""
    torch.manual_seed(seed)
    model = build_model(arch, splits.name, splits.num_classes, tuple(splits.input_shape), options)
    opt = torch.optim.Adam(model.parameters(), lr=0.03)
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(model(splits.x("train")), splits.y("train")).backward()
        opt.step()
    digest = save_torch(model.state_dict(), d / f"{name}.pt")
    write_json(d / f"{name}.json", {"kind": "base", "name": name, "dataset": splits.name, "arch": arch,
                                    "arch_options": options, "num_classes": splits.num_classes,
                                    "input_shape": list(splits.input_shape), "sha256": digest})
    return str(d / f"{name}.json")


@pytest.fixture(scope="module")
def gauss3(tmp_path_factory) -> Path:
    """gauss3 (30 test points), two random MLPs, their robustness records and the composite's description."""
    d = tmp_path_factory.mktemp("era")
    data_mod.prepare("gauss3", {"n_train": 150, "n_calib": 10, "n_test": 30, "spread": 0.5}, 0, d / "data.pt", {})
    splits = data_mod.load(d / "data.pt")
    for name, seed, steps in (("era", 0, 60), ("standard", 1, 20)):
        spec = _base(d, name, seed, splits, "mlp", {"hidden": [8, 8]}, steps)
        assert main(["era-robustness", *RT, "--data", str(d / "data.pt"), "--classifier", spec, "--name", name,
                     "--threat", THREAT, "--params", json.dumps(ROBUSTNESS), "--batch-size", "8",
                     "--out", str(d / f"{name}-robustness.csv")]) == 0
    assert main(["era-composite-spec", "--data", str(d / "data.pt"), "--robust", str(d / "era.json"),
                 "--standard", str(d / "standard.json"), "--selector",
                 json.dumps({"kind": "empirical", "scale": 1.0, "steps": 4, "restarts": 2}), "--threat", THREAT,
                 "--out", str(d / "composite.json")]) == 0
    return d


@pytest.fixture(scope="module")
def mixnet(tmp_path_factory) -> Path:
    """digits (40 test points), a mixing network over two random small CNNs, and an AutoAttack record of it
    (its clean predictions: the adaptive evaluation only joins it)."""
    d = tmp_path_factory.mktemp("mix")
    data_mod.prepare("digits", {"n_calib": 40, "n_test": 40}, 0, d / "data.pt", {})
    splits = data_mod.load(d / "data.pt")
    shape, classes = tuple(splits.input_shape), splits.num_classes
    specs = {role: _base(d, role, seed, splits, "small_cnn", {"width": 4}, 30)
             for role, seed in (("accurate", 0), ("robust", 1))}
    g, h = (build_model("small_cnn", splits.name, classes, shape, {"width": 4}) for _ in range(2))
    options = NetworkOptions(width=4, alpha_min=0.2, alpha_max=0.9)
    torch.manual_seed(2)
    net = MixingNetwork(g.feature_channels, h.feature_channels, options)
    digest = save_torch(net.state_dict(), d / "mixnet.pt")
    body = {"kind": "mixnet", "name": "mixnet", "dataset": splits.name, "num_classes": classes,
            "accurate": "accurate.json", "robust": "robust.json", "mode": "prob", "temp_g": 1.0, "temp_h": 1.0,
            "network": vars(options), "weights_sha256": digest}
    bases = {f"{role}_sha256": json.loads(Path(p).read_text())["sha256"] for role, p in specs.items()}
    body["sha256"] = spec_digest({**body, **bases})
    write_json(d / "mixnet.json", {**body, **bases})
    from tradeoff.classifiers import load_classifier

    model = load_classifier(d / "mixnet.json")
    assert isinstance(model, MixedClassifier)
    with torch.no_grad():
        pred = model(splits.x("test")).argmax(1)
    y = splits.y("test")
    rows = [{"index": i, "label": int(y[i]), "clean_prediction": int(pred[i]), "prediction": int(pred[i]),
             "correct": int(pred[i] == y[i]), "perturbation": 0.0} for i in range(len(y))]
    write_records(d / "aa.csv", rows, {"attack": "autoattack", "classifier_sha256": body["sha256"]},
                  columns=list(rows[0]))
    return d


def _robustness(d: Path, params: dict) -> list[str]:
    return ["era-robustness", *RT, "--seed", "0", "--data", str(d / "data.pt"), "--classifier", str(d / "era.json"),
            "--name", "era", "--threat", THREAT, "--params", json.dumps(params), "--batch-size", "7"]


def _composite(d: Path, seed: int) -> list[str]:
    return ["era-composite", *RT, "--seed", str(seed), "--data", str(d / "data.pt"), "--classifier",
            str(d / "composite.json"), "--robust-records", str(d / "era-robustness.csv"), "--standard-records",
            str(d / "standard-robustness.csv"), "--params", json.dumps({"steps": 5, "lambdas": [0.0, 1.0]}),
            "--suite", json.dumps({"targets": 1, "suite_steps": 3}), "--strong", json.dumps(ROBUSTNESS),
            "--batch-size", "8"]


def _adaptive(d: Path, w: list[float]) -> list[str]:
    params = {"w": w, "loss": "margin", "steps": 6, "step_rel": 0.1, "restarts": 2}
    return ["mixing-adaptive", *RT, "--seed", "0", "--data", str(d / "data.pt"), "--classifier",
            str(d / "mixnet.json"), "--name", "mixnet", "--autoattack", str(d / "aa.csv"), "--threat",
            json.dumps({"norm": "Linf", "eps": 0.1}), "--params", json.dumps(params),
            "--suite", json.dumps({"targets": 1, "suite_steps": 3}), "--batch-size", "12"]


def _records(argv: list[str], out: Path, stop_after: int | None = None) -> str | None:
    extra = [] if stop_after is None else ["--stop-after", str(stop_after)]
    assert main([*argv, *extra, "--out", str(out)]) == 0
    return out.read_text() if out.exists() else None


def _check_resume_guard(tmp_path: Path, capsys: pytest.CaptureFixture, argv: list[str], changed: list[str],
                        stop: int, total: int) -> None:
    full = _records(argv, tmp_path / "full.csv")
    assert full is not None and len(full.splitlines()) == total + 1
    # (a) stopped inside a chunk, then resumed with the same arguments
    out = tmp_path / "resumed.csv"
    partial = tmp_path / "resumed.csv.partial"
    assert _records(argv, out, stop_after=stop) is None
    assert len(partial.read_text().splitlines()) == stop + 1
    capsys.readouterr()
    assert _records(argv, out) == full
    assert f"{stop} of {total} points already done" in capsys.readouterr().err
    assert not partial.exists() and not (tmp_path / "resumed.csv.partial.foreign").exists()
    # (b) stopped, then rerun with one parameter changed: the progress is set aside, never merged
    out = tmp_path / "changed.csv"
    assert _records(argv, out, stop_after=stop) is None
    capsys.readouterr()
    result = _records(changed, out)
    assert "set aside as changed.csv.partial.foreign" in capsys.readouterr().err
    assert len((tmp_path / "changed.csv.partial.foreign").read_text().splitlines()) == stop + 1
    fresh = _records(changed, tmp_path / "fresh.csv")
    assert result == fresh
    assert fresh != full  # the changed parameter does change the records (else the check above is vacuous)


@pytest.mark.slow
def test_robustness_resumes_only_its_own_progress(gauss3, tmp_path, capsys):
    _check_resume_guard(tmp_path, capsys, _robustness(gauss3, ROBUSTNESS),
                        _robustness(gauss3, {**ROBUSTNESS, "steps": 2, "restarts": 1}), stop=10, total=30)


@pytest.mark.slow
def test_era_composite_resumes_only_its_own_progress(gauss3, tmp_path, capsys):
    _check_resume_guard(tmp_path, capsys, _composite(gauss3, 0), _composite(gauss3, 5), stop=11, total=30)


@pytest.mark.slow
def test_adaptive_eval_resumes_only_its_own_progress(mixnet, tmp_path, capsys):
    _check_resume_guard(tmp_path, capsys, _adaptive(mixnet, [0.5, 0.2]), _adaptive(mixnet, [0.9]), stop=17,
                        total=40)


@pytest.mark.slow
def test_records_do_not_depend_on_where_a_job_was_stopped(gauss3, tmp_path):
    """Stopped after every possible number of rows of the second chunk, each resumed job writes the same
    records: a chunk's draws depend on its first index only."""
    argv = _robustness(gauss3, ROBUSTNESS)
    full = _records(argv, tmp_path / "full.csv")
    for stop in (7, 8, 13):
        assert _records(argv, tmp_path / f"s{stop}.csv", stop_after=stop) is None
        assert _records(argv, tmp_path / f"s{stop}.csv") == full


@pytest.mark.parametrize("bits", [32, 64])
def test_chunk_generator_is_a_function_of_seed_and_start(bits: int):
    def draw(seed: int, start: int) -> torch.Tensor:
        return torch.rand(4, generator=chunk_generator(seed, start, bits))

    assert torch.equal(draw(0, 7), draw(0, 7))
    assert not torch.equal(draw(0, 7), draw(0, 14))
    assert not torch.equal(draw(0, 7), draw(1, 7))


@pytest.mark.slow
def test_summary_rows_of_a_resumed_job_equal_an_uninterrupted_one(gauss3, tmp_path):
    argv = _composite(gauss3, 0)
    _records(argv, tmp_path / "full.csv")
    _records(argv, tmp_path / "resumed.csv", stop_after=5)
    _records(argv, tmp_path / "resumed.csv")
    (_, a), (_, b) = read_records(tmp_path / "full.csv"), read_records(tmp_path / "resumed.csv")
    assert a["summary_rows"] == b["summary_rows"]
