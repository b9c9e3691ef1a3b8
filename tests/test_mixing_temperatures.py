"""Temperatures of the mixing stage chosen on the calibration split (temperature scaling)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from tradeoff.cli import main
from tradeoff.io import ArtifactError
from tradeoff.mixing.calibration import calibration_nll, fit_temperature, model_logits
from tradeoff.mixing.spec import resolve_temperatures

torch.set_num_threads(1)


def _sampled(temp: float, n: int = 20_000, classes: int = 10, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits z and labels drawn from softmax(temp·z): temp is the NLL-optimal factor in the limit n → ∞."""
    gen = torch.Generator().manual_seed(seed)
    z = 2.0 * torch.randn(n, classes, generator=gen, dtype=torch.float64)
    y = torch.multinomial(F.softmax(temp * z, dim=1), 1, generator=gen).squeeze(1)
    return z, y


@pytest.mark.parametrize("temp", [0.3, 1.0, 2.5])
def test_fit_recovers_the_temperature_that_generated_the_labels(temp):
    z, y = _sampled(temp)
    fit = fit_temperature(z, y)
    # the maximum-likelihood estimate of a one-parameter model on 20 000 draws: a few percent at most
    assert abs(math.log(fit.temp / temp)) < 0.05
    assert fit.n == 20_000
    assert fit.nll_after <= fit.nll_before
    assert fit.nll_before == pytest.approx(calibration_nll(z, y, 1.0))
    assert fit.nll_after == pytest.approx(calibration_nll(z, y, fit.temp))
    if temp != 1.0:  # a miscalibrated model gains clearly
        assert fit.nll_after < fit.nll_before - 0.01


def test_fitted_temperature_is_the_minimum_of_the_calibration_nll():
    z, y = _sampled(1.7, n=3000, seed=3)
    fit = fit_temperature(z, y)
    for factor in (0.9, 0.98, 1.02, 1.1):
        assert calibration_nll(z, y, fit.temp * factor) >= fit.nll_after - 1e-9
    # brute force over a grid agrees with the bounded search
    grid = torch.exp(torch.linspace(math.log(0.5), math.log(5.0), 2001, dtype=torch.float64))
    best = min(grid.tolist(), key=lambda t: calibration_nll(z, y, t))
    assert fit.temp == pytest.approx(best, rel=2e-3)


def test_fit_stays_within_its_bounds_and_never_worsens_the_nll():
    z, y = _sampled(4.0, n=3000, seed=1)
    fit = fit_temperature(z, y, bounds=(0.5, 2.0))
    assert 0.5 <= fit.temp <= 2.0 and fit.temp == pytest.approx(2.0, rel=1e-4)  # convex NLL: the bound nearest
    assert fit.nll_after <= fit.nll_before
    # labels independent of the logits: the best factor shrinks towards 0, still within the bounds
    z0 = torch.randn(2000, 5, generator=torch.Generator().manual_seed(2))
    y0 = torch.randint(0, 5, (2000,), generator=torch.Generator().manual_seed(3))
    fit0 = fit_temperature(z0, y0)
    assert 1e-2 <= fit0.temp < 0.2 and fit0.nll_after <= fit0.nll_before
    with pytest.raises(ValueError):
        fit_temperature(z0, y0, bounds=(2.0, 3.0))  # T = 1 (the reference) must lie inside
    with pytest.raises(ValueError):
        fit_temperature(z0[:10], y0[:9])


# ----------------------------------------------------------------------------------------------------------
# The command line: mixing-temperatures and the --temperatures option of mixing-spec, mixing-fit, mixing-margins
# ----------------------------------------------------------------------------------------------------------

RT = ["--threads", "1", "--device", "cpu", "--no-progress"]


def _run(*argv: str) -> int:
    return main(list(argv))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("temps")
    data = str(d / "data.pt")
    assert _run("data", "--dataset", "digits", "--params", json.dumps({"n_calib": 150, "n_test": 60}),
                "--seed", "0", "--out", data) == 0
    train = json.dumps({"epochs": 1, "batch_size": 64, "lr": 0.003})
    for name, seed in (("standard", "0"), ("other", "1")):
        assert _run("train", *RT, "--seed", seed, "--data", data, "--name", name, "--arch", "small_cnn",
                    "--arch-options", json.dumps({"width": 8}), "--objective", "standard", "--objective-params",
                    "{}", "--threat", json.dumps({"norm": "Linf", "eps": 0.1}), "--train-params", train,
                    "--checkpoint", str(d / f"ck-{name}.pt"), "--out", str(d / f"{name}.json")) == 0
    assert _run("mixing-temperatures", *RT, "--data", data, "--accurate", str(d / "standard.json"), "--robust",
                str(d / "other.json"), "--out", str(d / "temperatures.json")) == 0
    return d


@pytest.mark.slow
def test_command_fits_each_base_model_on_the_calibration_split(run_dir):
    from tradeoff import data
    from tradeoff.classifiers import load_classifier

    d = run_dir
    out = json.loads((d / "temperatures.json").read_text())
    splits = data.load(d / "data.pt")
    x, y = splits.x("calib"), splits.y("calib")
    assert out["split"] == "calib" and out["n"] == 150
    for role, name in (("g", "standard"), ("h", "other")):
        fit = fit_temperature(model_logits(load_classifier(d / f"{name}.json"), x), y)
        assert out[f"temp_{role}"] == pytest.approx(fit.temp, rel=1e-9)
        assert out["nll"][role]["after"] <= out["nll"][role]["before"]
        # a fit on the test split would differ: the command did not use it
        test_fit = fit_temperature(model_logits(load_classifier(d / f"{name}.json"), splits.x("test")),
                                   splits.y("test"))
        assert test_fit.temp != pytest.approx(fit.temp, rel=1e-6)
    assert out["accurate_sha256"] == json.loads((d / "standard.json").read_text())["sha256"]
    assert out["data_sha256"] == splits.meta["sha256"]
    assert "git_commit" in out and "versions" in out


@pytest.mark.slow
def test_mix_spec_takes_the_fitted_temperatures_and_refuses_other_models(run_dir):
    d = run_dir
    temps = json.loads((d / "temperatures.json").read_text())
    spec = d / "mix-prob-0.7.json"
    assert _run("mixing-spec", "--accurate", str(d / "standard.json"), "--robust", str(d / "other.json"), "--alpha",
                "0.7", "--mode", "prob", "--temp-g", "9", "--temperatures", str(d / "temperatures.json"),
                "--name", "mix-prob-0.7", "--out", str(spec)) == 0
    body = json.loads(spec.read_text())
    assert (body["temp_g"], body["temp_h"]) == (temps["temp_g"], temps["temp_h"])
    # the roles swapped: the temperatures belong to other models
    assert _run("mixing-spec", "--accurate", str(d / "other.json"), "--robust", str(d / "standard.json"), "--alpha",
                "0.7", "--mode", "prob", "--temperatures", str(d / "temperatures.json"), "--name", "x",
                "--out", str(d / "x.json")) == 3
    assert not (d / "x.json").exists()


@pytest.mark.slow
def test_temperatures_are_read_only_for_the_models_they_were_fitted_for(run_dir):
    d = run_dir
    temps = json.loads((d / "temperatures.json").read_text())
    path = str(d / "temperatures.json")
    assert resolve_temperatures(path, 1.0, 1.0, robust=d / "other.json") == (temps["temp_g"], temps["temp_h"])
    with pytest.raises(ArtifactError):
        resolve_temperatures(path, 1.0, 1.0, robust=d / "standard.json")
    with pytest.raises(ArtifactError):  # the roles swapped
        resolve_temperatures(path, 1.0, 1.0, accurate=d / "other.json")
    assert resolve_temperatures(None, 1.5, 0.5, accurate=d / "other.json") == (1.5, 0.5)
