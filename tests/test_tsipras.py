"""Trained linear models on Tsipras et al.'s distribution vs the closed forms of :mod:`tradeoff.theory.closed_forms`.

The closed forms themselves are checked against Monte Carlo in test_theory.py; here: the bridge between
torch models and (w, b), the exact worst-case records, the PGD core reaching the closed-form worst case,
Theorem 2.1 on every classifier the pipeline trains, and the stage end to end through the CLI.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from tradeoff import data as data_mod
from tradeoff.attacks.evaluate import run_attack
from tradeoff.attacks.pgd import Threat
from tradeoff.io import read_records
from tradeoff.models import build_model
from tradeoff.objectives import build_objective
from tradeoff.theory.closed_forms import (
    empirical_linear_accuracy,
    linear_accuracy,
    robust_feature_accuracy,
    sample_tsipras,
    tradeoff_bound,
)
from tradeoff.theory.tsipras import (
    closed_form_rows,
    empirical_bound_holds,
    eps_grid,
    exact_accuracy_curve,
    exact_records,
    linear_model,
    linear_params,
    reference_classifiers,
)
from tradeoff.train import TrainConfig, train

torch.set_num_threads(1)
# PGD parameters of the default config (theory.pgd) and of adversarial training (theory.pgd_at).
PGD = {"steps": 20, "step_rel": 0.125, "restarts": 1, "loss": "ce"}
PGD_AT = {"steps": 4, "step_rel": 0.5}


def _tensors(n: int, p: float, eta: float, d: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Samples as the data stage stores them: float32 inputs, class indices (1 ↔ y = +1)."""
    x, y = sample_tsipras(n, p, eta, d, np.random.default_rng(seed))
    return torch.tensor(x, dtype=torch.float32), torch.tensor((y > 0).astype(np.int64))


def _random_linear(rng: np.random.Generator, d: int) -> tuple[np.ndarray, float]:
    """Weights of both signs with some zeros, and a bias: nothing like the paper's special cases."""
    w = rng.standard_normal(d + 1)
    w[1 + rng.choice(d, size=d // 4, replace=False)] = 0.0
    return w, float(rng.normal(0, 0.5 * np.linalg.norm(w)))


def _train_linear(objective: str, x: torch.Tensor, y: torch.Tensor, eps: float, tmp_path, seed: int = 0,
                  epochs: int = 8) -> torch.nn.Module:
    model = build_model("linear", "tsipras", 2, (x.shape[1],))
    params = PGD_AT if objective == "pgd_at" else {}
    obj = build_objective(objective, params, Threat("Linf", eps, None))
    cfg = TrainConfig(epochs=epochs, batch_size=500, lr=0.02, seed=seed)
    train(model, obj, x, y, cfg, tmp_path / f"{objective}-{seed}.pt", f"{objective}-{seed}", torch.device("cpu"),
          progress=False)
    return model.eval()


def test_linear_params_round_trip_and_predictions():
    rng = np.random.default_rng(0)
    x, y = _tensors(3000, 0.8, 0.3, 12, seed=1)
    for _ in range(4):
        w, b = _random_linear(rng, 12)
        model = linear_model(w, b)
        w2, b2 = linear_params(model)
        np.testing.assert_allclose(w2, w, rtol=1e-6, atol=1e-6)
        assert b2 == pytest.approx(b, rel=1e-6, abs=1e-6)
        # class 1 (y = +1) exactly where w.x + b > 0
        with torch.no_grad():
            pred = model(x).argmax(1).numpy()
        s = x.double().numpy() @ w2 + b2
        assert np.all(pred[np.abs(s) > 1e-4] == (s[np.abs(s) > 1e-4] > 0))
    with pytest.raises(TypeError):
        linear_params(build_model("mlp", "tsipras", 2, (13,)))


def test_exact_records_are_the_worst_case():
    """Per-sample exact records equal empirical_linear_accuracy, and no perturbation in the ball does
    better than the closed-form one (checked against random corners of the ε-cube)."""
    rng = np.random.default_rng(2)
    p, eta, d = 0.85, 0.25, 16
    x, y = _tensors(2000, p, eta, d, seed=3)
    ys = 2.0 * y.numpy() - 1.0
    for _ in range(3):
        w, b = _random_linear(rng, d)
        for eps in (0.0, 0.1, 0.5):
            rec = exact_records(w, b, x, y, eps)
            acc = np.mean([r["correct"] for r in rec])
            assert acc == pytest.approx(empirical_linear_accuracy(w, b, x.double().numpy(), ys, eps), abs=1e-12)
            assert all(r["prediction"] == r["label"] for r in rec if r["correct"])
            assert all(r["perturbation"] == eps for r in rec)
            clean = np.mean([r["clean_correct"] for r in rec])
            assert clean == pytest.approx(empirical_linear_accuracy(w, b, x.double().numpy(), ys), abs=1e-12)
            assert all((r["clean_prediction"] == r["label"]) == bool(r["clean_correct"]) for r in rec)
            # from the records alone (margins), the accuracy at any budget is recovered
            margin = np.array([r["margin"] for r in rec])
            curve = exact_accuracy_curve(margin, float(np.abs(w).sum()), [0.0, eps])
            assert curve[1] == pytest.approx(acc, abs=1e-12)
            # random perturbations of the same size never beat the worst case
            delta = eps * rng.choice([-1.0, 1.0], size=(200, d + 1))
            xs = x.double().numpy()[:200]
            m_rand = ys[:200, None] * ((xs[:, None, :] + delta[None]) @ w + b)
            m_worst = np.array([r["margin"] for r in rec[:200]]) - eps * np.abs(w).sum()
            assert np.all(m_rand.min(axis=1) >= m_worst - 1e-9)


def test_exact_records_match_closed_form_by_monte_carlo():
    """On 10^5 samples, the exact worst-case accuracy of random linear classifiers is within 3 standard
    errors of the closed form (theory.linear_accuracy)."""
    rng = np.random.default_rng(4)
    n = 100_000
    for k in range(3):
        d = int(rng.integers(3, 30))
        p, eta = float(rng.uniform(0.55, 0.95)), float(rng.uniform(0.5, 3.0)) / math.sqrt(d)
        x, y = _tensors(n, p, eta, d, seed=10 + k)
        w, b = _random_linear(rng, d)
        eps = float(rng.uniform(0.0, 2.5)) * eta
        est = np.mean([r["correct"] for r in exact_records(w, b, x, y, eps)])
        exact = linear_accuracy(w, b, p, eta, d, eps)
        se = math.sqrt(exact * (1 - exact) / n)
        assert abs(est - exact) <= 3 * se + 1e-4, (est, exact, se)  # 1e-4: the float32 storage of x


def test_pgd_core_reaches_closed_form_worst_case(tmp_path):
    """The one PGD core (evaluate.run_attack) on linear models: within 0.5 points of the exact worst
    case on the same points, for random weights, the reference classifiers and trained models."""
    p, eta, d = 0.9, 0.3, 50
    eps = 2 * eta
    x, y = _tensors(2000, p, eta, d, seed=5)
    rng = np.random.default_rng(6)
    classifiers = dict(reference_classifiers(p, eta, d))
    classifiers.update({f"random{i}": _random_linear(rng, d) for i in range(2)})
    xt, yt = _tensors(4000, p, eta, d, seed=7)
    for objective in ("standard", "pgd_at"):
        classifiers[objective] = linear_params(_train_linear(objective, xt, yt, eps, tmp_path, epochs=4))
    threat = Threat("Linf", eps, None)
    for name, (w, b) in classifiers.items():
        for e in (0.5 * eta, eps):
            exact = np.mean([r["correct"] for r in exact_records(w, b, x, y, e)])
            records, _ = run_attack(linear_model(w, b), x, y, "pgd", Threat("Linf", e, None), PGD, 0,
                                    torch.device("cpu"), batch_size=1000)
            found = np.mean([r["correct"] for r in records])
            assert found >= exact - 1e-9, (name, e)  # PGD cannot beat the exact worst case
            assert found - exact <= 0.005, (name, e, found, exact)
            assert all(r["perturbation"] <= e + 1e-6 for r in records)
    assert threat.eps == eps


@pytest.mark.parametrize("p,k,d", [(0.95, 3.0, 100), (0.95, 4.0, 100), (0.6, 2.0, 20)])
def test_trained_models_respect_bound_and_reproduce_paper(tmp_path, p, k, d):
    """Theorem 2.1 holds for both classifiers the pipeline trains (population values at their learned
    weights, and test-set values up to sampling error), and the paper's prediction holds: standard
    training is accurate but not robust, adversarial training at ε = 2η gets standard accuracy ≈ p."""
    eta = k / math.sqrt(d)
    eps = 2 * eta
    x, y = _tensors(10_000, p, eta, d, seed=int(100 * p + d))
    xt, yt = _tensors(10_000, p, eta, d, seed=int(100 * p + d) + 1)
    for objective in ("standard", "pgd_at"):
        w, b = linear_params(_train_linear(objective, x, y, eps, tmp_path))
        std = linear_accuracy(w, b, p, eta, d)
        for e in (eps, 1.5 * eps):
            rob = linear_accuracy(w, b, p, eta, d, e)
            assert rob <= tradeoff_bound(p, std) + 1e-12
        clean = np.mean([r["correct"] for r in exact_records(w, b, xt, yt, 0.0)])
        robust = np.mean([r["correct"] for r in exact_records(w, b, xt, yt, eps)])
        assert empirical_bound_holds(p, eta, eps, clean, robust, len(yt))
        # The adversarial cross-entropy rewards x1 only if its worst-case margin term does, i.e. if
        # p (1 − ε) > (1 − p)(1 + ε) (slope of the loss at w1 = 0); otherwise it settles at w ≈ 0.
        if objective == "pgd_at" and p * (1 - eps) > (1 - p) * (1 + eps):
            assert abs(std - p) < 0.01, std
            assert linear_accuracy(w, b, p, eta, d, eps) == pytest.approx(robust_feature_accuracy(p, eps), abs=0.01)
        if objective == "standard" and k >= 3:
            assert std > 0.99 and linear_accuracy(w, b, p, eta, d, eps) < 0.02


def test_closed_form_rows_and_grid():
    p, eta, d = 0.95, 0.3, 100
    refs = reference_classifiers(p, eta, d)
    grid = eps_grid(1.2, 7, extra=[0.6, 0.45])
    assert grid == sorted(set(grid)) and 0.45 in grid and 0.6 in grid and grid[0] == 0.0 and grid[-1] == 1.2
    rows = closed_form_rows(refs, p, eta, d, grid)
    assert len(rows) == len(refs) * len(grid)
    for r in rows:
        if r["eps"] < 2 * eta:
            assert math.isnan(r["bound"])
        else:
            std = linear_accuracy(*refs[r["classifier"]], p, eta, d)
            assert r["bound"] == pytest.approx(tradeoff_bound(p, std))
            assert r["accuracy"] <= r["bound"] + 1e-12
    robust = {r["eps"]: r["accuracy"] for r in rows if r["classifier"] == "robust"}
    assert robust[0.0] == pytest.approx(p) and robust[0.6] == pytest.approx(p) and robust[1.2] == 0.0
    assert not empirical_bound_holds(p, eta, 0.6, clean=0.999, robust=0.5, n=10_000)
    assert empirical_bound_holds(p, eta, 0.6, clean=0.95, robust=0.953, n=10_000)


@pytest.mark.slow
def test_stage_end_to_end(tmp_path):
    """data → train (standard, pgd_at) → theory → figures, in process, on a tiny config:
    every record exists with the summary ids of the design and the figure files are written."""
    from tradeoff.cli import main

    prm = {"p": 0.9, "eta": 0.4, "d": 25, "n_train": 2000, "n_calib": 200, "n_test": 1000}
    data = tmp_path / "tsipras" / "data.pt"
    assert main(["data", "--dataset", "tsipras", "--params", json.dumps(prm), "--out", str(data)]) == 0
    assert data_mod.load(data).bounds is None
    threat = json.dumps({"norm": "Linf", "eps": 0.8})
    for name, objective in (("standard", "standard"), ("adversarial", "pgd_at")):
        assert main(["train", "--no-progress", "--data", str(data), "--name", f"tsipras-{name}", "--arch", "linear",
                     "--objective", objective, "--objective-params", json.dumps(PGD_AT), "--threat", threat,
                     "--train-params", json.dumps({"epochs": 3, "batch_size": 500, "lr": 0.02}),
                     "--checkpoint", str(tmp_path / f"ck-{name}.pt"),
                     "--out", str(tmp_path / "models" / f"{name}.json")]) == 0
    args = ["theory", "--no-progress", "--data", str(data), "--threat", threat, "--pgd", json.dumps(PGD),
            "--curve", json.dumps({"eps_max": 1.2, "points": 13}), "--eval-dir", str(tmp_path / "eval"),
            "--theory-dir", str(tmp_path / "theory")]
    for name in ("standard", "adversarial"):
        args += ["--model", f"{name}={tmp_path / 'models' / f'{name}.json'}"]
    assert main(args) == 0
    names = ["averaging", "bayes", "robust", "standard", "adversarial"]
    rows = []
    for name in names:
        for evaluation in ("exact", "pgd"):
            frame, meta = read_records(tmp_path / "eval" / name / f"{evaluation}.csv")
            assert len(frame) == prm["n_test"]
            rows += meta["summary_rows"]
    curves, meta = read_records(tmp_path / "theory" / "closed_forms.csv")
    rows += meta["summary_rows"]
    got = {(r["classifier"], r["evaluation"], r["eps"], r["metric"]) for r in rows}
    for name in names:
        cid = f"tsipras-{name}"
        assert (cid, "clean", 0.0, "accuracy") in got and (cid, "theory", 0.0, "accuracy") in got
        for evaluation in ("exact", "pgd", "theory"):
            assert (cid, evaluation, 0.8, "accuracy") in got
        assert (cid, "theory", 0.8, "robust_bound") in got
    value = {(r["classifier"], r["evaluation"], r["eps"]): r["value"] for r in rows if r["metric"] == "accuracy"}
    assert value[("tsipras-robust", "theory", 0.8)] == pytest.approx(0.9)
    for name in names:  # PGD reaches the exact worst case
        cid = f"tsipras-{name}"
        assert abs(value[(cid, "pgd", 0.8)] - value[(cid, "exact", 0.8)]) <= 0.005
    weights, _ = read_records(tmp_path / "theory" / "weights.csv")
    assert len(weights) == len(names) * (prm["d"] + 1)

    records = {n: {e: str(tmp_path / "eval" / n / f"{e}.csv") for e in ("exact", "pgd")} for n in names}
    fig_args = {"weights_out": str(tmp_path / "w.png"), "closed_forms": str(tmp_path / "theory" / "closed_forms.csv"),
                "weights": str(tmp_path / "theory" / "weights.csv"), "records": records,
                "trained": ["standard", "adversarial"], "references": ["averaging", "bayes", "robust"]}
    assert main(["figures", "tsipras", "--out", str(tmp_path / "t.png"), "--args", json.dumps(fig_args)]) == 0
    for f in ("t.png", "t.pdf", "w.png", "w.pdf"):
        assert (tmp_path / f).stat().st_size > 1000
