"""Mixed classifiers, the mixing network and its adaptive evaluation."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from tradeoff.cli import main
from tradeoff.io import read_records
from tradeoff.mixing import (
    MixedClassifier,
    MixingNetwork,
    NetworkOptions,
    adaptive_attack,
    mix_outputs,
)
from tradeoff.models import SmallCNN

torch.set_num_threads(1)


def _pair(seed: int = 0) -> tuple[SmallCNN, SmallCNN]:
    torch.manual_seed(seed)
    g = SmallCNN(1, 8, 10, width=8, mean=(0.3,), std=(0.35,)).eval()
    h = SmallCNN(1, 8, 10, width=8, mean=(0.3,), std=(0.35,)).eval()
    return g, h


X = torch.rand(32, 1, 8, 8, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("mode", ["prob", "logit"])
@pytest.mark.parametrize("temps", [(1.0, 1.0), (2.0, 0.5)])
def test_alpha_zero_is_g_and_alpha_one_is_h_exactly(mode, temps):
    g, h = _pair()
    tg, th = temps
    with torch.no_grad():
        for alpha, base, t in ((0.0, g, tg), (1.0, h, th)):
            out = MixedClassifier(g, h, alpha, mode, tg, th)(X)
            ref = t * base(X) if mode == "logit" else F.log_softmax(t * base(X), dim=1)
            assert torch.equal(out, ref)
            assert torch.equal(out.argmax(1), base(X).argmax(1))


def test_prob_mixture_is_a_valid_log_probability_vector_and_matches_the_formula():
    g, h = _pair()
    with torch.no_grad():
        lg, lh = g(X), h(X)
        for alpha in (0.1, 0.5, 0.77):
            out = mix_outputs(lg, lh, alpha, "prob", 1.5, 0.7)
            direct = torch.log((1 - alpha) * F.softmax(1.5 * lg, 1) + alpha * F.softmax(0.7 * lh, 1))
            assert torch.allclose(out, direct, atol=1e-5)
            assert torch.all(out <= 1e-6)
            assert torch.allclose(torch.logsumexp(out, 1), torch.zeros(X.shape[0]), atol=1e-5)
        # Extreme logits: every probability but one underflows in float32, yet the output stays finite.
        huge = mix_outputs(1e4 * lg, 1e4 * lh, 0.5, "prob")
        assert torch.isfinite(huge).all()
        assert torch.allclose(torch.logsumexp(huge, 1), torch.zeros(X.shape[0]), atol=1e-5)
        # A per-sample α gives row i the mixture with α_i.
        a = torch.linspace(0.05, 0.95, X.shape[0])
        rows = mix_outputs(lg, lh, a, "prob")
        for i in (0, 7, 31):
            single = mix_outputs(lg[i:i + 1], lh[i:i + 1], float(a[i]), "prob")[0]
            assert torch.allclose(rows[i], single, atol=1e-5)


def _composite(seed: int = 0, **opts) -> MixedClassifier:
    g, h = _pair(seed)
    net = MixingNetwork(g.feature_channels, h.feature_channels, NetworkOptions(width=8, **opts))
    return MixedClassifier(g, h, net, "prob")


def test_gradients_flow_through_the_mixing_network_but_not_into_the_base_models():
    model = _composite()
    model.train()
    assert not model.g.training and not model.h.training  # base models stay frozen, in eval mode
    x = X.clone().requires_grad_(True)
    res = model.forward_all(x)
    y = torch.arange(X.shape[0]) % 10
    loss = F.nll_loss(res.out, y) + F.binary_cross_entropy_with_logits(res.gamma, torch.ones_like(res.gamma))
    loss.backward()
    for name, p in model.net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name
    assert all(p.grad is None for p in list(model.g.parameters()) + list(model.h.parameters()))
    # The input gradient of α alone is non-zero: an attack can move α(x).
    model.eval()
    z = X.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(model.forward_all(z).alpha.sum(), z)
    assert grad.abs().sum() > 0


def test_eval_alpha_stays_in_its_range_and_train_alpha_in_unit_interval():
    model = _composite(alpha_min=0.6, alpha_max=0.9)
    model.train()
    for _ in range(3):  # move the BN running statistics
        model.forward_all(4 * X - 1.5)
    model.eval()
    with torch.no_grad():
        a = model.forward_all(torch.cat([X, 1 - X, X.round()])).alpha
    assert torch.all(a >= 0.6) and torch.all(a <= 0.9)


def test_bce_term_of_the_adaptive_objective_drives_alpha_down():
    model = _composite().eval()
    from tradeoff.attacks.pgd import Threat

    threat = Threat("Linf", 0.3)

    def gen() -> torch.Generator:
        return torch.Generator().manual_seed(0)
    y = model(X).argmax(1)
    with torch.no_grad():
        a_clean = model.forward_all(X).alpha
    common = dict(steps=10, step_rel=0.1, restarts=1)
    adv_bce = adaptive_attack(model, X, y, threat, w=1.0, generator=gen(), **common)
    adv_ce = adaptive_attack(model, X, y, threat, w=0.0, generator=gen(), **common)
    with torch.no_grad():
        a_bce, a_ce = model.forward_all(adv_bce).alpha, model.forward_all(adv_ce).alpha
    assert (adv_bce - X).abs().max() <= 0.3 + 1e-6
    assert (a_bce < a_clean).float().mean() > 0.9  # untrained network: α moves little, but down
    assert a_bce.mean() < a_ce.mean()


# ----------------------------------------------------------------------------------------------------------
# End to end through the command line: tiny base models, fitted mixing network, AutoAttack + adaptive
# ----------------------------------------------------------------------------------------------------------

THREAT = json.dumps({"norm": "Linf", "eps": 0.1})
RT = ["--threads", "1", "--device", "cpu", "--no-progress", "--seed", "0"]


def _run(*argv: str) -> None:
    assert main(list(argv)) == 0


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("mix")
    data = str(d / "data.pt")
    _run("prepare-data", "--dataset", "digits", "--params", json.dumps({"n_calib": 120, "n_test": 60}),
         "--seed", "0", "--out", data)
    train = json.dumps({"epochs": 4, "batch_size": 64, "lr": 0.003})
    for name, objective, params in (("standard", "standard", {}), ("pgd_at", "pgd_at", {"steps": 3})):
        _run("train", *RT, "--data", data, "--name", name, "--arch", "small_cnn", "--arch-options",
             json.dumps({"width": 8}), "--objective", objective, "--objective-params", json.dumps(params),
             "--threat", THREAT, "--train-params", train, "--checkpoint", str(d / f"ck-{name}.pt"),
             "--out", str(d / f"{name}.json"))
    fit = {"epochs": 2, "batch_size": 40, "lr": 0.003, "weight_decay": 0.0, "grad_clip": 10.0,
           "loss": {"c_bce": 1.0, "c_ce": 0.5, "c_prod": 0.1}, "attack": {"steps": 3}}
    _run("fit-mixnet", *RT, "--data", data, "--accurate", str(d / "standard.json"), "--robust",
         str(d / "pgd_at.json"), "--threat", THREAT, "--network", json.dumps({"width": 8}), "--fit",
         json.dumps(fit), "--checkpoint", str(d / "ck-mixnet.pt"), "--out", str(d / "mixnet.json"))
    aa = {"version": "custom", "attacks": ["apgd-ce", "apgd-t"], "n_iter": 10, "n_target_classes": 3}
    _run("evaluate", *RT, "--data", data, "--classifier", str(d / "mixnet.json"), "--name", "mixnet",
         "--attack", "autoattack", "--threat", THREAT, "--params", json.dumps(aa), "--out",
         str(d / "aa.csv"))
    return d


ADAPTIVE = {"w": [0.5, 0.2], "loss": "margin", "steps": 20, "step_rel": 0.1, "restarts": 1, "momentum": 0.0}


def _adaptive(d: Path, out: str) -> None:
    _run("adaptive-eval", *RT, "--data", str(d / "data.pt"), "--classifier", str(d / "mixnet.json"),
         "--name", "mixnet", "--autoattack", str(d / "aa.csv"), "--threat", THREAT, "--params",
         json.dumps(ADAPTIVE), "--batch-size", "25", "--out", str(d / out))


def test_adaptive_evaluation_is_at_least_as_strong_as_autoattack(pipeline):
    _adaptive(pipeline, "adaptive.csv")
    frame, meta = read_records(pipeline / "adaptive.csv")
    aa, _ = read_records(pipeline / "aa.csv")
    assert list(frame["index"]) == list(range(60))
    assert (frame.correct <= frame.correct_autoattack).all()
    assert (frame.correct <= frame.correct_adaptive).all()
    assert (frame.correct_autoattack.to_numpy() == aa.correct.to_numpy()).all()
    rows = {r["metric"]: r["value"] for r in meta["summary_rows"]}
    assert rows["accuracy_autoattack"] > 0.1  # a non-trivial case: AutoAttack leaves points to break
    assert rows["accuracy"] <= rows["accuracy_autoattack"] == pytest.approx(aa.correct.mean())
    assert rows["accuracy"] <= rows["accuracy_adaptive_only"]
    broken = frame.adaptive_w.notna()
    assert (broken == (frame.correct_adaptive == 0) & (frame.clean_prediction == frame.label)).all()
    assert rows["accuracy"] == pytest.approx(frame.correct.mean())
    assert set(meta["autoattack_flags"]) >= {"randomized", "zero_gradient", "square_beats_whitebox"}
    assert not meta["autoattack_flags"]["randomized"]  # the composite is deterministic in eval mode
    lo, hi = meta["alpha_range"]
    assert ((frame.alpha_clean >= lo) & (frame.alpha_clean <= hi)).all()
    assert ((frame.alpha_adaptive >= lo) & (frame.alpha_adaptive <= hi)).all()


def test_adaptive_evaluation_resumes_to_the_same_records(pipeline):
    _adaptive(pipeline, "full.csv")
    full = (pipeline / "full.csv").read_text()
    lines = full.splitlines(keepends=True)
    partial = pipeline / "resumed.csv.partial"
    partial.write_text("".join(lines[:31]) + lines[31][:7])  # 30 complete rows and a cut one
    _adaptive(pipeline, "resumed.csv")
    assert (pipeline / "resumed.csv").read_text() == full
    assert not partial.exists()


def test_autoattack_record_of_another_model_is_refused(pipeline, tmp_path):
    for name in ("data.pt", "data.json", "mixnet.json", "mixnet.pt", "standard.json", "standard.pt",
                 "pgd_at.json", "pgd_at.pt", "aa.csv", "aa.json"):
        shutil.copy(pipeline / name, tmp_path / name)
    spec = json.loads((tmp_path / "mixnet.json").read_text())
    spec["sha256"] = "0" * 64
    (tmp_path / "mixnet.json").write_text(json.dumps(spec))
    assert main(["adaptive-eval", *RT, "--data", str(tmp_path / "data.pt"), "--classifier",
                 str(tmp_path / "mixnet.json"), "--name", "mixnet", "--autoattack", str(tmp_path / "aa.csv"),
                 "--threat", THREAT, "--params", json.dumps(ADAPTIVE), "--out", str(tmp_path / "x.csv")]) == 3


def test_fixed_alpha_specs_load_and_reduce_to_the_base_models(pipeline):
    from tradeoff import data
    from tradeoff.classifiers import load_classifier

    d = pipeline
    x = data.load(d / "data.pt").x("test")
    g = load_classifier(d / "standard.json")
    for alpha, mode in ((0.0, "prob"), (0.0, "logit"), (0.6, "prob")):
        out = str(d / f"mix-{mode}-{alpha:g}.json")
        _run("mix-spec", "--accurate", str(d / "standard.json"), "--robust", str(d / "pgd_at.json"),
             "--alpha", str(alpha), "--mode", mode, "--name", f"mix-{mode}-{alpha:g}", "--out", out)
        model = load_classifier(out)
        assert not any(p.requires_grad for p in model.parameters())
        if alpha == 0.0:
            with torch.no_grad():
                assert torch.equal(model(x).argmax(1), g(x).argmax(1))


def test_margin_record_and_figures(pipeline):
    d = pipeline
    pgd = {"steps": 5, "step_rel": 0.25, "restarts": 1, "loss": "ce"}
    _run("robust-margins", *RT, "--data", str(d / "data.pt"), "--classifier", str(d / "pgd_at.json"),
         "--name", "pgd_at", "--threat", THREAT, "--params", json.dumps(pgd), "--out", str(d / "margin.csv"))
    frame, meta = read_records(d / "margin.csv")
    assert ((frame.clean_margin >= 0) & (frame.clean_margin <= 1)).all()
    assert (frame.adv_correct <= frame.clean_correct).all()
    assert (frame.perturbation <= 0.1 + 1e-6).all()
    metrics = {r["metric"] for r in meta["summary_rows"]}
    assert metrics == {"mean_margin_correct_attacked", "mean_margin_wrong_clean"}
    if not (d / "adaptive.csv").exists():
        _adaptive(d, "adaptive.csv")
    _run("figure", "mixing-margin", "--out", str(d / "margin.png"), "--args",
         json.dumps({"records": str(d / "margin.csv")}))
    _run("figure", "mixing-alpha", "--out", str(d / "alpha.png"), "--args",
         json.dumps({"records": str(d / "adaptive.csv")}))
    assert (d / "margin.png").stat().st_size > 0 and (d / "alpha.pdf").stat().st_size > 0
