"""ERA loss, robustness metrics, the 2ε selector, the certified selector and the compositional classifier."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tradeoff.abstain import (
    CertifiedSelector,
    Composite,
    EmpiricalSelector,
    RobustnessAttack,
    certified_l2_radius_needed,
    clean_decision,
    compositional_indicators,
    robustness_metrics,
    robustness_test,
)
from tradeoff.attacks.adaptive import AdaptiveAttack, LazySelection, era_adaptive_attack
from tradeoff.attacks.pgd import Threat
from tradeoff.classifiers import load_classifier
from tradeoff.io import save_torch, write_json
from tradeoff.models import build_model
from tradeoff.objectives import build_objective
from tradeoff.objectives.era import era_loss, other_top_class

torch.set_num_threads(1)

D = 4
W = torch.tensor([0.8, -0.5, 0.3, 0.6])
W1 = float(W.abs().sum())  # ‖w‖₁: the ℓ∞-ball of radius r changes w·x by at most r·‖w‖₁
THREAT = Threat("Linf", 0.1, None)


class Linear2(nn.Module):
    """Logits (−s, s) with s = w·x + b: class 1 iff w·x + b > 0."""

    def __init__(self, w: torch.Tensor, b: float):
        super().__init__()
        self.w = nn.Parameter(w.clone(), requires_grad=False)
        self.b = b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x @ self.w + self.b
        return torch.stack([-s, s], dim=1)


class Constant(nn.Module):
    """Always predicts ``cls`` (zero gradient)."""

    def __init__(self, cls: int, num_classes: int = 2):
        super().__init__()
        self.logits = torch.full((num_classes,), -5.0)
        self.logits[cls] = 5.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits.expand(x.shape[0], -1) + 0.0 * x.sum(1, keepdim=True)


def points_with_margin(margins: torch.Tensor) -> torch.Tensor:
    """Inputs x with w·x = margin (x along w, so each point's score is exactly its margin)."""
    return margins[:, None] * W[None, :] / float(W @ W)


# ----------------------------------------------------------------------------------------------------------
# Metrics
# ----------------------------------------------------------------------------------------------------------


def test_metrics_on_hand_made_cases():
    correct = [1, 1, 1, 0, 0, 0, 0, 1]
    robust = [1, 1, 0, 1, 0, 0, 0, 0]
    m = robustness_metrics(correct, robust)
    assert m["accuracy"] == pytest.approx(4 / 8)
    assert m["robust_accuracy"] == pytest.approx(2 / 8)
    assert m["robust_inaccuracy"] == pytest.approx(1 / 8)
    assert m["non_robust"] == pytest.approx(5 / 8)
    assert m["robust_accuracy"] + m["robust_inaccuracy"] + m["non_robust"] == pytest.approx(1.0)
    assert math.isnan(robustness_metrics([], [])["accuracy"])
    with pytest.raises(ValueError):
        robustness_metrics([1, 0], [1])


def test_compositional_indicators_pick_the_selected_model():
    s = np.array([1, 1, 0, 0, 1, 0], dtype=bool)
    acc_rob = np.array([1, 0, 1, 0, 1, 1], dtype=bool)
    rob_rob = np.array([1, 1, 1, 1, 0, 0], dtype=bool)
    acc_std = np.array([0, 1, 1, 1, 0, 0], dtype=bool)
    rob_std = np.array([0, 0, 1, 0, 1, 1], dtype=bool)
    correct, robust = compositional_indicators(s, acc_rob, rob_rob, acc_std, rob_std)
    assert correct.tolist() == [True, False, True, True, True, False]
    assert robust.tolist() == [True, True, True, False, False, True]
    # the reference code's comp_rob_acc = mean[(s·acc_r + (1−s)·acc_s)·(s·rob_r + (1−s)·rob_s)]
    si = s.astype(float)
    formula = np.mean((si * acc_rob + (1 - si) * acc_std) * (si * rob_rob + (1 - si) * rob_std))
    assert (correct & robust).mean() == pytest.approx(formula)


# ----------------------------------------------------------------------------------------------------------
# The ERA loss
# ----------------------------------------------------------------------------------------------------------


def test_other_top_class_never_returns_the_excluded_class():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(200, 5, generator=gen)
    exclude = logits.argmax(1)
    t = other_top_class(logits, exclude)
    assert (t != exclude).all()
    expected = logits.sort(1, descending=True).indices[:, 1]
    assert torch.equal(t, expected)
    other = (exclude + 1) % 5  # excluding a non-top class returns the top class
    assert torch.equal(other_top_class(logits, other), exclude)


def test_era_loss_matches_its_closed_form():
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(16, 4, generator=gen)
    logits_adv = torch.randn(16, 4, generator=gen)
    y = torch.randint(0, 4, (16,), generator=gen)
    own = logits.argmax(1)
    p = F.softmax(logits, 1)
    t = other_top_class(logits_adv, own)
    ce_t = F.cross_entropy(logits_adv, t, reduction="none")
    kl = (p * (p.log() - F.log_softmax(logits_adv, 1))).sum(1)
    ce_y = F.cross_entropy(logits, y, reduction="none")
    beta, beta_t = 0.7, 3.0
    for weight, w in (("soft", 1 - p[torch.arange(16), y]), ("hard", (own != y).float())):
        for red, k in (("mean", kl / 4), ("sum", kl)):
            loss, _ = era_loss(logits, logits_adv, y, own, beta=beta, beta_trades=beta_t, weight=weight,
                               kl_reduction=red)
            expected = (w * ce_t + beta * (ce_y + beta_t * k)).mean()
            assert float(loss) == pytest.approx(float(expected), rel=1e-5)


def test_era_soft_weight_passes_gradient_and_hard_weight_does_not():
    gen = torch.Generator().manual_seed(2)
    base = torch.randn(8, 3, generator=gen)
    logits_adv = torch.randn(8, 3, generator=gen)
    y = torch.randint(0, 3, (8,), generator=gen)
    grads = {}
    for weight in ("soft", "hard"):
        logits = base.clone().requires_grad_(True)
        loss, _ = era_loss(logits, logits_adv, y, base.argmax(1), beta=0.0, beta_trades=0.0, weight=weight)
        loss.backward()
        grads[weight] = logits.grad
    assert grads["soft"].abs().sum() > 0  # through w(x) = 1 − p_y(x)
    assert grads["hard"].abs().sum() == 0  # the indicator is constant


def test_era_objective_trains_in_eval_mode_and_restores_the_mode():
    torch.manual_seed(0)
    model = build_model("mlp", "gauss3", 3, (2,), {"hidden": [8, 8]})
    objective = build_objective("era", {"steps": 3, "weight": "hard"}, Threat("Linf", 0.2, None))
    x, y = torch.randn(32, 2), torch.randint(0, 3, (32,))
    model.train()
    loss, stats = objective(model, x, y)
    assert model.training and torch.isfinite(loss)
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    assert {"abstain", "natural", "kl", "acc", "adv_flip"} <= set(stats)
    with pytest.raises(ValueError):
        build_objective("era", {"weight": "medium"}, THREAT)


# ----------------------------------------------------------------------------------------------------------
# Robustness test and selectors on a linear model (where PGD is exact)
# ----------------------------------------------------------------------------------------------------------


def test_robustness_test_is_exact_on_a_linear_model():
    model = Linear2(W, 0.0)
    margins = torch.linspace(-3 * THREAT.eps * W1, 3 * THREAT.eps * W1, 61)
    margins = margins[(margins.abs() - THREAT.eps * W1).abs() > 1e-3]  # drop the ties
    x = points_with_margin(margins)
    res = robustness_test(model, x, THREAT, RobustnessAttack(steps=10, step_rel=0.25))
    expected = margins.abs() > THREAT.eps * W1
    assert torch.equal(res.robust, expected)
    assert torch.equal(res.clean_prediction, (margins > 0).long())
    flipped = ~res.robust
    assert (res.adv_prediction[flipped] != res.clean_prediction[flipped]).all()
    assert (res.x_adv - x).abs().max() <= THREAT.eps + 1e-6
    assert all(f == "pgd" for f, fl in zip(res.flipped_by, flipped.tolist(), strict=True) if fl)


def test_robustness_test_with_apgd_keeps_every_flip_valid():
    """Images in [0, 1]: APGD (pyautoattack) runs after a deliberately weak PGD and must find exactly the
    non-robust points, inside the ball and the box."""
    threat = Threat("Linf", 0.1, (0.0, 1.0))
    model = Linear2(W, -0.5 * float(W.sum()))  # s(0.5 + v) = w·v
    margins = torch.linspace(-2.5 * threat.eps * W1, 2.5 * threat.eps * W1, 24)
    x = 0.5 + points_with_margin(margins)
    attack = RobustnessAttack(steps=1, step_rel=0.01, apgd=("apgd-ce",), apgd_iter=10)
    res = robustness_test(model, x, threat, attack)
    assert (res.x_adv - x).abs().max() <= threat.eps + 1e-5
    assert res.x_adv.min() >= 0 and res.x_adv.max() <= 1
    assert torch.equal(res.robust, res.adv_prediction == res.clean_prediction)
    assert torch.equal(res.robust, margins.abs() > threat.eps * W1)
    assert "apgd" in res.flipped_by
    # unbounded data: pyautoattack would clip to [0, 1] and leave the ball, so only PGD runs
    res = robustness_test(Linear2(W, 0.0), x - 0.5, THREAT, attack)
    assert "apgd" not in res.flipped_by
    assert (res.x_adv - (x - 0.5)).abs().max() <= THREAT.eps + 1e-6


def test_empirical_selector_tests_the_scaled_ball():
    model = Linear2(W, 0.0)
    margins = torch.tensor([0.5, 1.5, 2.5, -0.5, -1.5, -2.5]) * THREAT.eps * W1
    x = points_with_margin(margins)
    selector = EmpiricalSelector(model, THREAT, steps=10, step_rel=0.25)
    sel = selector(x)
    assert sel.selected.tolist() == [False, True, True, False, True, True]  # robust at ε
    assert selector.indicator(x, 2.0).tolist() == [False, False, True, False, False, True]  # robust at 2ε
    assert torch.allclose(sel.branch_logp, F.log_softmax(model(x), 1))


def test_2eps_rule_accepted_points_cannot_be_fooled_and_eps_rule_points_can():
    """The runtime selector tests robustness at ε. Clean points soundly selected by the 2ε rule cannot be
    fooled within ε; points the selector accepts that are robust only at ε can: the attacker moves them
    next to the robust model's boundary, the selector rejects and a standard model that is wrong there
    answers. So 'accepted at ε' must not be counted as robust; 'robust at 2ε' can."""
    robust = Linear2(W, 0.0)
    standard = Constant(0)  # wrong on every class-1 point
    composite = Composite(robust, standard, EmpiricalSelector(robust, THREAT, steps=10, step_rel=0.25))
    margins = torch.linspace(0.05, 3.5, 60) * THREAT.eps * W1  # class-1 points at every distance
    margins = margins[((margins / (THREAT.eps * W1)) - margins.div(THREAT.eps * W1).round()).abs() > 0.01]
    x = points_with_margin(margins)
    dec = clean_decision(composite, x)
    assert torch.equal(dec.sound, margins > 2 * THREAT.eps * W1)
    assert torch.equal(dec.selected, margins > THREAT.eps * W1)
    assert torch.equal(dec.prediction, composite(x).argmax(1))
    res = era_adaptive_attack(composite, x, dec.prediction, THREAT,
                          AdaptiveAttack(steps=20, step_rel=0.1, lambdas=(0.0, 1.0)))
    assert not (dec.sound & res.fooled).any()  # the 2ε rule is sound
    eps_only = dec.selected & ~dec.sound
    assert eps_only.any() and res.fooled[eps_only].all()  # robustness at ε alone is not
    assert all(not res.selected[i] for i in torch.nonzero(eps_only).flatten().tolist())  # fooled by rejection
    # and the strongest ε-perturbation of a soundly selected point (towards the boundary) stays accepted
    worst = x[dec.sound] - THREAT.eps * W.sign()[None, :]
    sel_worst, out_worst = composite.decide(worst)
    assert sel_worst.all() and torch.equal(out_worst.argmax(1), dec.prediction[dec.sound])
    # every reported success is a genuine point of the ball where F's prediction differs
    fooled = res.fooled
    assert (res.x_adv - x).abs().max() <= THREAT.eps + 1e-6
    assert torch.equal(composite(res.x_adv[fooled]).argmax(1), res.prediction[fooled])
    assert (res.prediction[fooled] != dec.prediction[fooled]).all()


def test_lazy_selection_matches_the_composite_when_it_refreshes_and_keeps_the_2eps_rule_sound():
    robust = Linear2(W, 0.0)
    composite = Composite(robust, Constant(0), EmpiricalSelector(robust, THREAT, steps=10, step_rel=0.25))
    margins = torch.linspace(0.05, 3.5, 60) * THREAT.eps * W1
    margins = margins[((margins / (THREAT.eps * W1)) - margins.div(THREAT.eps * W1).round()).abs() > 0.01]
    x = points_with_margin(margins)
    lazy = LazySelection(composite, every=3)
    shifted = (x + 0.5 * THREAT.eps * W.sign()[None, :]).clamp(0, 1)
    outs = [lazy(z) for z in (x, shifted, shifted, shifted)]
    assert torch.equal(outs[0], composite(x))  # call 0 refreshes
    assert torch.equal(outs[3], composite(shifted))  # call 3 refreshes
    # calls 1 and 2 reuse the decision made at x: the branch outputs at `shifted`, chosen by x's mask
    mask = composite.selector(x).selected
    expected = torch.where(mask[:, None], F.log_softmax(robust(shifted), 1), F.log_softmax(Constant(0)(shifted), 1))
    assert torch.equal(outs[1], expected)
    # the end-to-end attack with lazy refreshes: still never fools a soundly selected point, and still
    # fools the points robust at ε only (every success is judged on the real composite)
    dec = clean_decision(composite, x)
    res = era_adaptive_attack(composite, x, dec.prediction, THREAT,
                              AdaptiveAttack(steps=20, step_rel=0.1, lambdas=(0.0, 1.0), selector_refresh=5))
    assert not (dec.sound & res.fooled).any()
    eps_only = dec.selected & ~dec.sound
    assert eps_only.any() and res.fooled[eps_only].all()
    assert torch.equal(composite(res.x_adv[res.fooled]).argmax(1), res.prediction[res.fooled])


def test_composite_equals_robust_model_where_selected_and_standard_elsewhere():
    torch.manual_seed(3)
    robust = build_model("mlp", "gauss3", 3, (2,), {"hidden": [16, 16]}).eval()
    standard = build_model("mlp", "gauss3", 3, (2,), {"hidden": [16, 16]}).eval()
    threat = Threat("Linf", 0.05, None)
    composite = Composite(robust, standard, EmpiricalSelector(robust, threat, steps=5))
    x = 2 * torch.randn(300, 2)
    with torch.no_grad():
        selected, out = composite.decide(x)
        expected = torch.where(selected[:, None], F.log_softmax(robust(x), 1), F.log_softmax(standard(x), 1))
        assert torch.allclose(out, expected)
        assert torch.equal(out.argmax(1)[selected], robust(x).argmax(1)[selected])
        assert torch.equal(out.argmax(1)[~selected], standard(x).argmax(1)[~selected])
        assert torch.equal(composite(x), out)
    assert 0 < int(selected.sum()) < len(x)  # both branches are exercised


# ----------------------------------------------------------------------------------------------------------
# The certified selector
# ----------------------------------------------------------------------------------------------------------


def test_certified_radius_conversion():
    assert certified_l2_radius_needed(Threat("L2", 0.5), 2.0, 64) == pytest.approx(1.0)
    assert certified_l2_radius_needed(Threat("Linf", 0.1), 2.0, 64) == pytest.approx(0.2 * 8)


def test_certified_selector_accepts_only_truly_robust_points():
    """For a linear base model the smoothed classifier equals it and its true ℓ2 radius is |s|/‖w‖₂: every
    accepted point must have a true radius ≥ the needed one and keep the linear model's class."""
    w2 = float(W.norm())
    model = Linear2(W, 0.0)
    threat = Threat("L2", 0.1, None)
    selector = CertifiedSelector(model, 2, threat, sigma=0.25, n0=50, n=500, alpha=0.001, seed=0)
    margins = torch.linspace(-1.2, 1.2, 25) * w2  # true radius = |margin| / ‖w‖₂ ∈ [0, 1.2]
    x = points_with_margin(margins)
    preds, radii, freqs = selector.certify(x)
    true_radius = margins.abs() / w2
    for scale in (1.0, 2.0):
        accepted = selector.indicator(x, scale)
        assert accepted.any() and not accepted.all()
        assert (true_radius[accepted] >= certified_l2_radius_needed(threat, scale, D)).all()
    assert (radii <= true_radius + 1e-6).all()
    certified = preds != -1
    assert torch.equal(preds[certified], (margins[certified] > 0).long())
    assert torch.allclose(freqs.sum(1), torch.ones(len(x)))
    composite = Composite(model, Constant(0), selector)
    dec = clean_decision(composite, x)
    assert torch.equal(dec.selected, selector.indicator(x, 1.0))
    assert torch.equal(dec.sound, selector.indicator(x, 2.0))
    assert torch.equal(dec.prediction, composite(x).argmax(1))
    assert torch.equal(dec.prediction[dec.selected], preds[dec.selected])
    assert (dec.prediction[~dec.selected] == 0).all()


# ----------------------------------------------------------------------------------------------------------
# Loading the composite from its description
# ----------------------------------------------------------------------------------------------------------


def _write_base(tmp_path, name: str, seed: int) -> str:
    torch.manual_seed(seed)
    model = build_model("mlp", "gauss3", 3, (2,), {"hidden": [8, 8]})
    digest = save_torch(model.state_dict(), tmp_path / f"{name}.pt")
    spec = tmp_path / f"{name}.json"
    write_json(spec, {"kind": "base", "name": name, "dataset": "gauss3", "arch": "mlp",
                      "arch_options": {"hidden": [8, 8]}, "num_classes": 3, "input_shape": [2], "sha256": digest})
    return str(spec)


def test_era_composite_kind_loads_and_decides(tmp_path):
    robust, standard = _write_base(tmp_path, "era", 0), _write_base(tmp_path, "standard", 1)
    spec = tmp_path / "era-composite.json"
    write_json(spec, {"kind": "era-composite", "robust": robust, "standard": standard, "num_classes": 3,
                      "selector": {"kind": "empirical", "scale": 1.0, "steps": 4, "step_rel": 0.25, "restarts": 1},
                      "threat": {"norm": "Linf", "eps": 0.1}, "bounds": None})
    composite = load_classifier(spec)
    assert isinstance(composite, Composite)
    x = torch.randn(50, 2)
    with torch.no_grad():
        selected, out = composite.decide(x)
        assert torch.equal(out.argmax(1)[selected], composite.robust(x).argmax(1)[selected])
        assert torch.equal(out.argmax(1)[~selected], composite.standard(x).argmax(1)[~selected])
    assert composite.selector.threat.eps == pytest.approx(0.1)
    assert torch.equal(clean_decision(composite, x).prediction, out.argmax(1))


# ----------------------------------------------------------------------------------------------------------
# The commands, end to end on a tiny gauss3
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_commands_end_to_end_and_resume(tmp_path):
    from tradeoff import data as data_mod
    from tradeoff.cli import main
    from tradeoff.io import read_json, read_records

    data = tmp_path / "data.pt"
    data_mod.prepare("gauss3", {"n_train": 20, "n_calib": 10, "n_test": 30, "spread": 0.5}, 0, data, {})
    robust, standard = _write_base(tmp_path, "era", 0), _write_base(tmp_path, "standard", 1)
    threat = '{"norm": "Linf", "eps": 0.2}'
    attack = '{"steps": 5, "step_rel": 0.25, "apgd": ["apgd-ce"]}'
    recs = {}
    for name, spec in (("era", robust), ("standard", standard)):
        recs[name] = str(tmp_path / f"{name}-robustness.csv")
        assert main(["era-robustness", "--data", str(data), "--classifier", spec, "--name", name, "--threat", threat,
                     "--params", attack, "--batch-size", "7", "--clean-row", "--coordinates",
                     "--grid-out", str(tmp_path / f"{name}-grid.csv"), "--grid-size", "12",
                     "--out", recs[name]]) == 0
    frame, meta = read_records(recs["era"])
    assert len(frame) == 30 and list(frame["index"]) == list(range(30))
    assert (frame["robust_accurate"] == frame["correct"] * frame["robust"]).all()
    assert (frame["robust_inaccurate"] == (1 - frame["correct"]) * frame["robust"]).all()
    rows = {(r["evaluation"], r["metric"]): r["value"] for r in meta["summary_rows"]}
    assert rows[("robustness", "accuracy")] == pytest.approx(frame["robust_accurate"].mean())
    assert rows[("robustness", "robust_inaccuracy")] == pytest.approx(frame["robust_inaccurate"].mean())
    assert rows[("clean", "accuracy")] == pytest.approx(frame["correct"].mean())
    assert len(read_records(tmp_path / "era-grid.csv")[0]) == 144

    comp = tmp_path / "era-composite.json"
    assert main(["era-composite-spec", "--data", str(data), "--robust", robust, "--standard", standard,
                 "--selector", '{"kind": "empirical", "scale": 1.0, "steps": 5}', "--threat", threat,
                 "--out", str(comp)]) == 0
    assert read_json(comp)["kind"] == "era-composite"
    out = tmp_path / "adaptive.csv"
    args = ["era-composite", "--data", str(data), "--classifier", str(comp), "--robust-records", recs["era"],
            "--standard-records", recs["standard"], "--params", '{"steps": 5, "lambdas": [1.0]}',
            "--batch-size", "8", "--out", str(out)]
    assert main(args) == 0
    frame, meta = read_records(out)
    full = out.read_bytes()
    assert (frame["robust"] == frame["formula_robust"] * frame["attack_robust"]).all()
    assert (frame["robust_accurate"] <= frame["formula_correct"]).all()
    assert (frame["prediction"] == np.where(frame["selected"] == 1, frame["branch_prediction"],
                                            frame["standard_prediction"])).all()
    metrics = {(r["evaluation"], r["metric"]) for r in meta["summary_rows"]}
    assert {("clean", "accuracy"), ("clean", "selection_rate"), ("adaptive", "accuracy"),
            ("adaptive", "robust_inaccuracy")} <= metrics
    # killed inside the second chunk, with a row cut mid-write: the rerun keeps the complete rows (same key)
    # and produces the same bytes
    out.unlink()
    assert main([*args, "--stop-after", "10"]) == 0 and not out.exists()
    partial = tmp_path / "adaptive.csv.partial"
    lines = partial.read_text().splitlines(keepends=True)
    assert len(lines) == 11
    partial.write_text("".join(lines[:10]) + lines[10][:5])
    assert main(args) == 0
    assert out.read_bytes() == full
    assert not (tmp_path / "adaptive.csv.partial.foreign").exists()
