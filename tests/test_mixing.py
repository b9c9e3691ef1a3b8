"""Mixed classifiers, the mixing network and its adaptive evaluation."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from tradeoff.attacks.adaptive import adaptive_objective, mixnet_attack
from tradeoff.attacks.pgd import Threat, dlr_targeted_loss, pgd
from tradeoff.cli import main
from tradeoff.io import read_records
from tradeoff.mixing import fitting
from tradeoff.mixing.fitting import (
    CompositeLoss,
    FitAttack,
    attack_targets,
    fit_adversaries,
    fit_objective,
    randomized_adversary,
)
from tradeoff.mixing.model import MixedClassifier, MixingNetwork, MixOutput, NetworkOptions, mix_outputs
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
    # the objective alone (no success test, so no point is frozen where it first misclassifies)
    adv_bce = pgd(adaptive_objective(model, y, 1.0), X, threat, steps=10, step_size=0.03, generator=gen())
    adv_ce = pgd(adaptive_objective(model, y, 0.0), X, threat, steps=10, step_size=0.03, generator=gen())
    with torch.no_grad():
        a_bce, a_ce = model.forward_all(adv_bce).alpha, model.forward_all(adv_ce).alpha
    assert (adv_bce - X).abs().max() <= 0.3 + 1e-6
    assert (a_bce < a_clean).float().mean() > 0.9  # untrained network: α moves little, but down
    assert a_bce.mean() < a_ce.mean()
    # the attack built on it (best iterate: broken points stop where they break) stays in the ball
    adv = mixnet_attack(model, X, y, threat, w=0.5, steps=10, step_rel=0.1, restarts=2, generator=gen())
    assert (adv - X).abs().max() <= 0.3 + 1e-6


# ----------------------------------------------------------------------------------------------------------
# The fitting adversary: untargeted + targeted (APGD-T-like) randomized runs, and the composite loss
# ----------------------------------------------------------------------------------------------------------


def test_targeted_dlr_loss_matches_a_hand_computation_and_needs_four_classes():
    logits = torch.tensor([[3.0, 1.0, 0.0, -1.0, 2.0], [0.0, 5.0, 1.0, 1.0, -2.0]])
    y, t = torch.tensor([0, 2]), torch.tensor([4, 0])
    # row 0: sorted 3, 2, 1, 0, −1 → −(3 − 2)/(3 − (1 + 0)/2) = −1/2.5
    # row 1: sorted 5, 1, 1, 0, −2 → −(1 − 0)/(5 − (1 + 0)/2) = −1/4.5
    expected = torch.tensor([-1 / 2.5, -1 / 4.5])
    assert torch.allclose(dlr_targeted_loss(logits, y, t), expected)
    assert torch.allclose(dlr_targeted_loss(3 * logits - 7, y, t), expected, atol=1e-6)  # shift/scale invariant
    with pytest.raises(ValueError, match="at least 4 classes"):
        dlr_targeted_loss(logits[:, :3], torch.tensor([0, 1]), torch.tensor([1, 2]))


def test_fit_attack_refuses_a_negative_number_of_targets():
    assert FitAttack(targets=3).targets == 3
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="targets"):
            FitAttack(targets=bad)


def test_attack_targets_are_the_next_most_likely_classes_never_the_label():
    model = _composite().eval()
    x = X[:16]
    with torch.no_grad():
        order = model(x).argsort(1, descending=True)
    y = order[:, 0].clone()
    y[8:] = order[8:, 2]  # half the points misclassified: their label is the 3rd most likely class
    t = attack_targets(model, x, y, 4)
    assert t.shape == (16, 4)
    assert (t != y[:, None]).all()
    assert torch.equal(t[:8], order[:8, 1:5])  # correct points: the 2nd..5th classes, as APGD-T
    assert torch.equal(t[8:], order[8:][:, [0, 1, 3, 4]])  # wrong points: the label skipped
    with pytest.raises(ValueError, match="classes"):
        attack_targets(model, x, y, 10)


@pytest.mark.parametrize("norm,eps", [("Linf", 0.3), ("L2", 1.5)])
def test_targeted_runs_never_target_the_label_and_stay_in_their_own_budgets(monkeypatch, norm, eps):
    model = _composite().eval()
    x = X[:12]
    with torch.no_grad():
        y = model(x).argmax(1)
    y[::3] = (y[::3] + 1) % 10  # some points misclassified
    threat = Threat(norm, eps)
    runs, targets = [], []
    real_pgd, real_objective = fitting.pgd, fitting.adaptive_objective

    def recording_pgd(objective, x0, thr, **kw):
        out = real_pgd(objective, x0, thr, **kw)
        runs.append((kw["eps"], out))
        return out

    def recording_objective(m, yy, w, loss="ce", target=None):
        if target is not None:
            targets.append(target.clone())
        return real_objective(m, yy, w, loss, target)

    monkeypatch.setattr(fitting, "pgd", recording_pgd)
    monkeypatch.setattr(fitting, "adaptive_objective", recording_objective)
    cfg = FitAttack(steps=3, targets=3)
    torch.manual_seed(0)
    groups = fit_adversaries(model, x, y, threat, cfg)
    assert len(groups) == len(runs) == 4 and len(targets) == 3
    for (e, out), group in zip(runs, groups, strict=True):
        assert out is group and group.shape == x.shape
        assert ((e >= cfg.eps_lo * eps - 1e-6) & (e <= cfg.eps_hi * eps + 1e-6)).all()
        d = (group - x).flatten(1)
        size = d.abs().max(1).values if norm == "Linf" else d.norm(dim=1)
        assert (size <= e * (1 + 1e-5) + 1e-6).all()
        assert group.min() >= 0.0 and group.max() <= 1.0
    assert not torch.equal(runs[1][0], runs[2][0])  # each run draws its own budgets
    for t in targets:
        assert (t != y).all()
    assert all(not torch.equal(targets[0], t) for t in targets[1:])
    # targets = 0: exactly the random numbers (and points) of the untargeted adversary alone
    monkeypatch.undo()
    torch.manual_seed(5)
    (only,) = fit_adversaries(model, x, y, threat, FitAttack(steps=3))
    torch.manual_seed(5)
    assert torch.equal(only, randomized_adversary(model, x, y, threat, FitAttack(steps=3)))


def _mix_output(n: int, seed: int = 0) -> MixOutput:
    gen = torch.Generator().manual_seed(seed)
    out = F.log_softmax(torch.randn(n, 10, generator=gen), dim=1)
    gamma = torch.randn(n, generator=gen)
    return MixOutput(out, torch.sigmoid(gamma), gamma)


def test_composite_loss_with_one_adversarial_group_is_the_old_formula_and_groups_are_averaged_apart():
    loss = CompositeLoss(c_bce=1.3, c_ce=0.5, c_prod=0.1, scale_clean=2.0, scale_adv=0.7)
    n = 24
    res = _mix_output(2 * n)
    y = torch.arange(2 * n) % 10
    s = torch.cat([torch.zeros(n), torch.ones(n)])
    # the formula before targeted groups: the mean over all 2n points of scale·ℓ
    bce = F.binary_cross_entropy_with_logits(res.gamma, s, reduction="none")
    ce = F.nll_loss(res.out, y, reduction="none")
    per_sample = 1.3 * bce + 0.5 * ce + 0.1 * bce * ce
    old = (torch.where(s > 0.5, torch.full_like(s, 0.7), torch.full_like(s, 2.0)) * per_sample).mean()
    assert torch.equal(loss(res, y, s, "prob"), old)
    # three adversarial groups: ½·(scale_clean·mean_clean + scale_adv·mean_adv), the clean term undiluted
    res4 = _mix_output(4 * n, seed=1)
    y4, s4 = torch.arange(4 * n) % 10, torch.cat([torch.zeros(n), torch.ones(3 * n)])
    bce = F.binary_cross_entropy_with_logits(res4.gamma, s4, reduction="none")
    ce = F.nll_loss(res4.out, y4, reduction="none")
    ell = 1.3 * bce + 0.5 * ce + 0.1 * bce * ce
    expected = 0.5 * (2.0 * ell[:n].mean() + 0.7 * ell[n:].mean())
    assert torch.allclose(loss(res4, y4, s4, "prob"), expected, rtol=1e-6)


def test_fit_objective_with_targets_forwards_every_group_at_once_and_trains_only_the_network():
    model = _composite().train()
    n = 8
    x, y = X[:n], torch.arange(n) % 10
    seen = []
    model.net.bn_gamma.register_forward_hook(lambda mod, inp, out: seen.append((mod.training, inp[0].shape[0])))
    objective = fit_objective(Threat("Linf", 0.3), FitAttack(steps=2, targets=2), CompositeLoss())
    torch.manual_seed(0)
    total, metrics = objective(model, x, y)
    assert model.training
    assert [b for training, b in seen if training] == [4 * n]  # one train-mode forward over clean + 3 groups
    assert all(b == n for training, b in seen if not training)  # the attacks and the target ranking
    assert set(metrics) == {"loss", "alpha_clean", "alpha_adv", "acc_clean", "acc_adv"}
    assert torch.isfinite(total) and metrics["loss"] == pytest.approx(total.item())
    total.backward()
    for name, p in model.net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert any(p.grad.abs().sum() > 0 for p in model.net.parameters())
    assert all(p.grad is None for p in list(model.g.parameters()) + list(model.h.parameters()))


def test_a_targeted_run_raises_the_target_over_the_label():
    model = _composite().eval()
    x = X[:16]
    with torch.no_grad():
        y = model(x).argmax(1)
    t = attack_targets(model, x, y, 1)[:, 0]
    cfg = FitAttack(steps=10, eps_lo=1.0, eps_hi=1.0, w_max=0.0, momentum_max=0.0, step_factor=2.5)
    torch.manual_seed(0)
    x_adv = randomized_adversary(model, x, y, Threat("Linf", 0.3), cfg, target=t)

    def margin(z: torch.Tensor) -> torch.Tensor:  # log p_t − log p_y of the mixture
        with torch.no_grad():
            out = model(z)
        return out.gather(1, t[:, None]).squeeze(1) - out.gather(1, y[:, None]).squeeze(1)

    before, after = margin(x), margin(x_adv)
    assert (after > before).float().mean() >= 0.9
    assert after.mean() > before.mean()
    with torch.no_grad():
        assert (model(x_adv).argmax(1) == t).float().mean() >= 0.5  # mostly reaches the target class


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
    _run("data", "--dataset", "digits", "--params", json.dumps({"n_calib": 120, "n_test": 60}),
         "--seed", "0", "--out", data)
    train = json.dumps({"epochs": 4, "batch_size": 64, "lr": 0.003})
    for name, objective, params in (("standard", "standard", {}), ("pgd_at", "pgd_at", {"steps": 3})):
        _run("train", *RT, "--data", data, "--name", name, "--arch", "small_cnn", "--arch-options",
             json.dumps({"width": 8}), "--objective", objective, "--objective-params", json.dumps(params),
             "--threat", THREAT, "--train-params", train, "--checkpoint", str(d / f"ck-{name}.pt"),
             "--out", str(d / f"{name}.json"))
    fit = {"epochs": 2, "batch_size": 40, "lr": 0.003, "weight_decay": 0.0, "grad_clip": 10.0,
           "loss": {"c_bce": 1.0, "c_ce": 0.5, "c_prod": 0.1}, "attack": {"steps": 3, "targets": 1}}
    _run("mixing-fit", *RT, "--data", data, "--accurate", str(d / "standard.json"), "--robust",
         str(d / "pgd_at.json"), "--threat", THREAT, "--network", json.dumps({"width": 8}), "--fit",
         json.dumps(fit), "--checkpoint", str(d / "ck-mixnet.pt"), "--out", str(d / "mixnet.json"))
    aa = {"version": "custom", "attacks": ["apgd-ce", "apgd-t"], "n_iter": 10, "n_target_classes": 3}
    _run("attacks", *RT, "--data", data, "--classifier", str(d / "mixnet.json"), "--name", "mixnet",
         "--attacks", "autoattack", "--threat", THREAT, "--params", json.dumps({"autoattack": aa}), "--out-dir",
         str(d))
    shutil.copy(d / "autoattack.csv", d / "aa.csv")
    shutil.copy(d / "autoattack.json", d / "aa.json")
    return d


ADAPTIVE = {"w": [0.5, 0.2], "loss": "margin", "steps": 20, "step_rel": 0.1, "restarts": 1, "momentum": 0.0}


def _adaptive(d: Path, out: str, *extra: str) -> None:
    _run("mixing-adaptive", *RT, "--data", str(d / "data.pt"), "--classifier", str(d / "mixnet.json"),
         "--name", "mixnet", "--autoattack", str(d / "aa.csv"), "--threat", THREAT, "--params",
         json.dumps(ADAPTIVE), "--batch-size", "25", *extra, "--out", str(d / out))


@pytest.mark.slow
def test_fitted_spec_records_the_targeted_fitting_adversary(pipeline):
    spec = json.loads((pipeline / "mixnet.json").read_text())
    assert spec["config"]["attack"]["targets"] == 1  # the CLI passes mixing.fit.attack.targets to FitAttack


@pytest.mark.slow
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


@pytest.mark.slow
def test_adaptive_evaluation_resumes_to_the_same_records(pipeline):
    _adaptive(pipeline, "full.csv")
    full = (pipeline / "full.csv").read_text()
    _adaptive(pipeline, "resumed.csv", "--stop-after", "31")  # killed inside the second chunk
    assert not (pipeline / "resumed.csv").exists()
    partial = pipeline / "resumed.csv.partial"
    lines = partial.read_text().splitlines(keepends=True)
    assert len(lines) == 32
    partial.write_text("".join(lines[:31]) + lines[31][:7])  # 30 complete rows and a cut one
    _adaptive(pipeline, "resumed.csv")
    assert (pipeline / "resumed.csv").read_text() == full
    assert not partial.exists() and not (pipeline / "resumed.csv.partial.foreign").exists()


@pytest.mark.slow
def test_autoattack_record_of_another_model_is_refused(pipeline, tmp_path):
    for name in ("data.pt", "data.json", "mixnet.json", "mixnet.pt", "standard.json", "standard.pt",
                 "pgd_at.json", "pgd_at.pt", "aa.csv", "aa.json"):
        shutil.copy(pipeline / name, tmp_path / name)
    spec = json.loads((tmp_path / "mixnet.json").read_text())
    spec["sha256"] = "0" * 64
    (tmp_path / "mixnet.json").write_text(json.dumps(spec))
    assert main(["mixing-adaptive", *RT, "--data", str(tmp_path / "data.pt"), "--classifier",
                 str(tmp_path / "mixnet.json"), "--name", "mixnet", "--autoattack", str(tmp_path / "aa.csv"),
                 "--threat", THREAT, "--params", json.dumps(ADAPTIVE), "--out", str(tmp_path / "x.csv")]) == 3


@pytest.mark.slow
def test_fixed_alpha_specs_load_and_reduce_to_the_base_models(pipeline):
    from tradeoff import data
    from tradeoff.classifiers import load_classifier

    d = pipeline
    x = data.load(d / "data.pt").x("test")
    g = load_classifier(d / "standard.json")
    for alpha, mode in ((0.0, "prob"), (0.0, "logit"), (0.6, "prob")):
        out = str(d / f"mix-{mode}-{alpha:g}.json")
        _run("mixing-spec", "--accurate", str(d / "standard.json"), "--robust", str(d / "pgd_at.json"),
             "--alpha", str(alpha), "--mode", mode, "--name", f"mix-{mode}-{alpha:g}", "--out", out)
        model = load_classifier(out)
        assert not any(p.requires_grad for p in model.parameters())
        if alpha == 0.0:
            with torch.no_grad():
                assert torch.equal(model(x).argmax(1), g(x).argmax(1))


@pytest.mark.slow
def test_margin_record_and_figures(pipeline):
    d = pipeline
    pgd = {"steps": 5, "step_rel": 0.25, "restarts": 1, "loss": "ce"}
    _run("mixing-margins", *RT, "--data", str(d / "data.pt"), "--classifier", str(d / "pgd_at.json"),
         "--name", "pgd_at", "--threat", THREAT, "--params", json.dumps(pgd), "--out", str(d / "margin.csv"))
    frame, meta = read_records(d / "margin.csv")
    assert ((frame.clean_margin >= 0) & (frame.clean_margin <= 1)).all()
    assert (frame.adv_correct <= frame.clean_correct).all()
    assert (frame.perturbation <= 0.1 + 1e-6).all()
    metrics = {r["metric"] for r in meta["summary_rows"]}
    assert metrics == {"mean_margin_correct_attacked", "mean_margin_wrong_clean"}
    if not (d / "adaptive.csv").exists():
        _adaptive(d, "adaptive.csv")
    _run("figures", "mixing-margin", "--out", str(d / "margin.png"), "--args",
         json.dumps({"records": str(d / "margin.csv")}))
    _run("figures", "mixing-alpha", "--out", str(d / "alpha.png"), "--args",
         json.dumps({"records": str(d / "adaptive.csv")}))
    assert (d / "margin.png").stat().st_size > 0 and (d / "alpha.pdf").stat().st_size > 0


