"""The strong attack suite: margin PGD with restarts and targeted runs, the per-point worst case, the
composite attacks and the masked-gradient sanity checks."""

from __future__ import annotations

import json
import math
import re

import pytest
import torch
from torch import nn

from tradeoff.attacks.adaptive import CompositeSuite, composite_suite
from tradeoff.attacks.evaluate import evaluation_rows, run_attack, summary_row
from tradeoff.attacks.pgd import Threat
from tradeoff.attacks.sanity import sanity_checks
from tradeoff.attacks.suite import MarginSuite, margin_attack, other_classes
from tradeoff.attacks.worst import RecordMismatch, worst_case


class Linear(nn.Module):
    """Multi-class linear model z = W x + b on flat inputs."""

    def __init__(self, w: torch.Tensor, b: torch.Tensor):
        super().__init__()
        self.w, self.b = w, b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.w.T + self.b


def exact_linf_robust(w: torch.Tensor, b: torch.Tensor, x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
    """Closed form without input bounds: a linear classifier keeps class y on the ℓ∞ ball iff for every other
    class j, (w_y − w_j)·x + b_y − b_j > ε‖w_y − w_j‖₁ (the pairwise margin, cf. Tsipras et al. 2019, Sec. 2)."""
    ok = (x @ w.T + b).argmax(1) == y
    for j in range(w.shape[0]):
        d = w[y] - w[j]
        m = (d * x).sum(1) + b[y] - b[j]
        ok &= (j == y) | (m > eps * d.abs().sum(1))
    return ok


# ----------------------------------------------------------------------------------------------------------
# The margin suite reaches the closed-form worst case of linear models
# ----------------------------------------------------------------------------------------------------------


def test_margin_suite_reaches_the_exact_worst_case_of_a_multiclass_linear_model():
    torch.manual_seed(0)
    c, d = 5, 12
    w, b = torch.randn(c, d), 0.1 * torch.randn(c)
    model = Linear(w, b)
    x = torch.randn(400, d)
    with torch.no_grad():
        y = model(x).argmax(1)
    y[:40] = (y[:40] + 1) % c  # some clean errors
    eps = 0.15
    threat = Threat("Linf", eps, None)
    exact = exact_linf_robust(w, b, x, y, eps)
    assert 0.2 < exact.float().mean() < 0.8  # the budget matters
    # margin PGD with targeted runs towards every other class: linear pairwise margins are exactly reachable
    suite = MarginSuite(steps=20, step_rel=0.125, restarts=1, targets=c - 1)
    res = margin_attack(model, x, y, threat, suite, generator=torch.Generator().manual_seed(0))
    assert torch.equal(res.prediction == y, exact)
    assert all(res.broken_by[i] == "clean" for i in range(40) if bool(model(x[i:i + 1]).argmax(1) != y[i]))
    assert (res.x_adv - x).abs().max() <= eps + 1e-6
    # every reported break is genuine
    broken = res.prediction != y
    with torch.no_grad():
        assert torch.equal(model(res.x_adv).argmax(1)[broken], res.prediction[broken])


@pytest.mark.parametrize("name", ["averaging", "bayes", "robust"])
def test_margin_suite_matches_the_tsipras_closed_form(name):
    # Tsipras et al.'s reference linear classifiers on their distribution: the exact ℓ∞ worst case lowers
    # the margin by ε‖w‖₁ (tradeoff.theory.tsipras.exact_records); the suite must find exactly those flips
    from tradeoff.data import make_tsipras
    from tradeoff.theory.tsipras import exact_records, linear_model, reference_classifiers

    p, eta, d = 0.95, 0.3, 30
    data = make_tsipras(p, eta, d, 1, 1, 600, seed=1)
    x, y = data["x_test"], data["y_test"].long()
    w, b = reference_classifiers(p, eta, d)[name]
    eps = 0.15 if name != "robust" else 1.2
    exact = torch.tensor([r["correct"] for r in exact_records(w, b, x, y, eps)], dtype=torch.bool)
    res = margin_attack(linear_model(w, b), x, y, Threat("Linf", eps, None), MarginSuite(steps=10, step_rel=0.25),
                        generator=torch.Generator().manual_seed(0))
    assert torch.equal(res.prediction == y, exact)


def test_targeted_runs_break_points_untargeted_margin_pgd_misses_and_cost_falls_on_survivors():
    # A model whose untargeted margin gradient points to a class that cannot be reached, while another
    # class can: z = [0, a·x1 − 2, 10·x0 − 100]. Class 2 dominates the margin's gradient only beyond reach.
    torch.manual_seed(2)
    calls = {"points": 0}

    class Trap(nn.Module):
        def forward(self, x):
            calls["points"] += x.shape[0]
            zero = torch.zeros(x.shape[0])
            return torch.stack([zero, 4 * x[:, 1] - 2, 2.0 * x[:, 0] - 1.5], dim=1)

    x = torch.zeros(64, 2)
    x[:, 0] = 0.1  # class 0: z = [0, −2, −1.3]; the best other class (2) cannot win within ε = 0.3
    y = torch.zeros(64, dtype=torch.long)
    model = Trap()
    threat = Threat("Linf", 0.3, None)
    # untargeted margin follows class 2 (the largest other logit) and fails
    plain = margin_attack(model, x, y, threat, MarginSuite(steps=10, step_rel=0.25, restarts=1, targets=0),
                          generator=torch.Generator().manual_seed(0))
    assert (plain.prediction == y).all()
    # 2nd target (class 1) is reachable: 4·0.4 − 2 < 0 ... at x1 = 0.3 + start: z1 = −0.8 < 0 — not reachable
    # either at ε = 0.3, so use ε = 0.6 where class 1 wins (z1 = 0.4 > 0) while class 2 still does not
    threat = Threat("Linf", 0.6, None)
    plain = margin_attack(model, x, y, threat, MarginSuite(steps=10, step_rel=0.25, restarts=1, targets=0),
                          generator=torch.Generator().manual_seed(0))
    calls["points"] = 0
    both = margin_attack(model, x, y, threat, MarginSuite(steps=10, step_rel=0.25, restarts=1, targets=2),
                         generator=torch.Generator().manual_seed(0))
    assert (both.prediction != y).all()
    assert set(both.broken_by) <= {"margin", "margin-t1", "margin-t2"}
    # points broken by the untargeted run are not attacked by the targeted ones (survivors only)
    n_plain = int((plain.prediction != y).sum())
    assert calls["points"] <= 64 + 64 * 11 + (64 - n_plain) * 11 * 2 + 64 * 2


def test_other_classes_never_contain_the_label():
    logits = torch.tensor([[3.0, 1.0, 2.0, 0.0], [0.0, 5.0, 1.0, 4.0]])
    y = torch.tensor([0, 3])
    t = other_classes(logits, y, 2)
    assert t.tolist() == [[2, 1], [1, 2]]
    assert other_classes(logits, y, 10).shape == (2, 3)


def test_margin_attack_is_deterministic_given_the_seed():
    torch.manual_seed(3)
    net = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 4))
    x = torch.randn(50, 8)
    with torch.no_grad():
        y = net(x).argmax(1)
    suite = MarginSuite(steps=5, step_rel=0.25, restarts=2, targets=2)
    a = margin_attack(net, x, y, Threat("Linf", 0.3, None), suite, generator=torch.Generator().manual_seed(7))
    b = margin_attack(net, x, y, Threat("Linf", 0.3, None), suite, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a.x_adv, b.x_adv) and a.broken_by == b.broken_by


# ----------------------------------------------------------------------------------------------------------
# Worst case per point
# ----------------------------------------------------------------------------------------------------------


def _recs(correct, clean=None, pred=None):
    n = len(correct)
    clean = clean or [0] * n
    return [{"index": i, "label": 0, "clean_prediction": clean[i],
             "prediction": (pred[i] if pred else (0 if correct[i] else 1)), "correct": correct[i],
             "perturbation": 0.1 * i} for i in range(n)]


def test_worst_case_keeps_the_minimum_and_names_the_first_breaking_attack():
    clean = [0, 0, 0, 0, 2]
    a = _recs([1, 0, 1, 1, 0], clean)
    b = _recs([0, 0, 1, 1, 0], clean)
    c = _recs([1, 1, 0, 1, 0], clean)
    out = worst_case([("pgd", a), ("margin", b), ("autoattack", c)])
    assert [r["correct"] for r in out] == [0, 0, 0, 1, 0]
    assert [r["broken_by"] for r in out] == ["margin", "pgd", "autoattack", "", "clean"]
    assert all(r["prediction"] != r["label"] for r in out if r["correct"] == 0)
    assert out[4]["prediction"] == 2 and out[3]["prediction"] == 0
    # the order of the attacks only changes the names, never the correctness
    rev = worst_case([("autoattack", c), ("margin", b), ("pgd", a)])
    assert [r["correct"] for r in rev] == [r["correct"] for r in out]
    assert rev[1]["broken_by"] == "margin"


def test_worst_case_refuses_records_of_other_points_labels_or_models():
    a = _recs([1, 1, 0])
    with pytest.raises(RecordMismatch, match="^b: its points"):
        worst_case([("a", a), ("b", a[:2])])
    other = [dict(r) for r in a]
    other[1]["label"] = 3
    with pytest.raises(RecordMismatch, match="^c: label of point 1"):
        worst_case([("a", a), ("c", other)])
    other = [dict(r) for r in a]
    other[2]["clean_prediction"] = 5
    with pytest.raises(RecordMismatch, match="clean prediction"):
        worst_case([("a", a), ("d", other)])


def test_worst_command_writes_the_summary_row_and_fails_on_another_threat(tmp_path, capsys):
    from tradeoff.cli import main
    from tradeoff.io import read_records, write_records

    threat = {"norm": "Linf", "eps": 0.3}
    cols = ["index", "label", "clean_prediction", "prediction", "correct", "perturbation"]
    paths = []
    for name, correct in (("pgd", [1, 0, 1, 1]), ("margin", [1, 0, 0, 1])):
        p = tmp_path / f"{name}.csv"
        write_records(p, _recs(correct), {"attack": name, **threat, "dataset": "digits"}, columns=cols)
        paths.append(str(p))
    out = tmp_path / "worst.csv"
    assert main(["attacks-worst", "--out", str(out), "--name", "m", "--threat", json.dumps(threat), *paths]) == 0
    frame, meta = read_records(out)
    assert frame["correct"].tolist() == [1, 0, 0, 1]
    assert frame["broken_by"].fillna("").tolist() == ["", "pgd", "margin", ""]
    (row,) = meta["summary_rows"]
    assert (row["evaluation"], row["metric"], row["value"], row["n"]) == ("worst", "accuracy", 0.5, 4)
    bad = tmp_path / "far.csv"
    write_records(bad, _recs([1, 1, 1, 1]), {"attack": "pgd", "norm": "Linf", "eps": 0.1}, columns=cols)
    assert main(["attacks-worst", "--out", str(out), "--name", "m", "--threat", json.dumps(threat), paths[0],
                 str(bad)]) == 3
    assert re.search(r"far\.csv: threat", capsys.readouterr().err)
    short = tmp_path / "short.csv"
    write_records(short, _recs([1, 1, 1]), {"attack": "x", **threat, "dataset": "digits"}, columns=cols)
    assert main(["attacks-worst", "--out", str(out), "--name", "m", "--threat", json.dumps(threat), paths[0],
                 str(short)]) == 3
    assert re.search(r"short\.csv: .*points differ", capsys.readouterr().err)


# ----------------------------------------------------------------------------------------------------------
# Composite attacks: targeted runs and transfer, judged on the composite
# ----------------------------------------------------------------------------------------------------------


def test_transfer_from_a_base_model_breaks_a_composite_whose_own_gradient_is_masked():
    torch.manual_seed(4)
    w, b = torch.randn(3, 6), torch.zeros(3)
    base = Linear(w, b)

    class Masked(nn.Module):  # same decisions as the base model, zero gradient everywhere
        def forward(self, x):
            return base(x).detach() + 0 * x.sum()

    x = torch.randn(200, 6)
    with torch.no_grad():
        y = base(x).argmax(1)
    threat = Threat("Linf", 0.2, None)
    exact = exact_linf_robust(w, b, x, y, 0.2)
    suite = CompositeSuite(targets=2, transfer=False, steps=10, step_rel=0.25)
    own = composite_suite(Masked(), {"base": base}, x, y, threat, suite)
    with_transfer = composite_suite(Masked(), {"base": base}, x, y, threat,
                                    CompositeSuite(targets=2, transfer=True, steps=10, step_rel=0.25,
                                                   transfer_restarts=1))
    assert int(own.fooled.sum()) < int((~exact).sum())  # the masked gradient hides most flips
    assert torch.equal(with_transfer.fooled, ~exact)  # transfer from the base model finds every one
    assert all(p.startswith(("transfer-base", "margin-t")) for p, f in
               zip(with_transfer.path, with_transfer.fooled.tolist(), strict=True) if f)
    with torch.no_grad():
        assert (Masked()(with_transfer.x_adv[with_transfer.fooled]).argmax(1) != y[with_transfer.fooled]).all()
    assert with_transfer.fooled_by_transfer.any()


# ----------------------------------------------------------------------------------------------------------
# Masked-gradient sanity checks
# ----------------------------------------------------------------------------------------------------------


class Quantized(nn.Module):
    """A weak linear model behind a non-differentiable quantizer: gradients are exactly zero."""

    def __init__(self, inner: nn.Module, levels: int = 4):
        super().__init__()
        self.inner, self.levels = inner, levels

    def forward(self, x):
        return self.inner(torch.round(x * self.levels) / self.levels)


def _image_problem():
    torch.manual_seed(5)
    d = 16
    w = torch.randn(2, d)
    w[1] = -w[0]
    b = -(w @ torch.full((d,), 0.5))  # the decision boundary passes through the centre of the box
    x = torch.rand(120, 1, 4, 4)
    with torch.no_grad():
        y = (x.flatten(1) @ w.T + b).argmax(1)
    return Linear(w, b), x, y


def _suite_rows(model, x, y, name):
    threat = Threat("Linf", 0.1, (0.0, 1.0))
    rows = []
    for attack, params in (
        ("pgd", {"steps": 10, "step_rel": 0.25, "restarts": 1, "loss": "ce"}),
        ("margin", {"steps": 10, "step_rel": 0.25, "restarts": 2}),
        ("eps-sweep", {"steps": 10, "step_rel": 0.25, "restarts": 1, "eps_factors": [0.5, 1, 2, 4, 10]}),
        ("autoattack", {"version": "custom", "attacks": ["apgd-ce", "square"], "n_iter": 20,
                        "square_queries": 300}),
    ):
        recs, meta = run_attack(model, x, y, attack, threat, params, 0, torch.device("cpu"), 500)
        rows += [{**r, "classifier": name} for r in evaluation_rows("toy", name, attack, threat, recs, meta)]
    return rows


def test_sanity_checks_flag_a_masked_model_and_pass_a_normal_one():
    inner, x, y = _image_problem()
    normal = _suite_rows(inner, x, y, "normal")
    masked = _suite_rows(Quantized(inner), x, y, "masked")
    checks = sanity_checks(normal + masked)
    failed = {(c.classifier, c.check) for c in checks if not c.passed}
    ran = {(c.classifier, c.check) for c in checks}
    assert {("normal", "zero_at_large_eps"), ("normal", "blackbox_vs_whitebox"),
            ("normal", "monotone_eps")} <= ran
    assert not {f for f in failed if f[0] == "normal"}, [c for c in checks if not c.passed]
    # the masked model: gradient attacks stall, random starts and Square do the breaking
    assert ("masked", "zero_at_large_eps") in failed
    assert ("masked", "blackbox_vs_whitebox") in failed
    assert all(c.reason for c in checks)


def test_sanity_checks_on_hand_made_rows():
    def row(ev, eps, value, metric="accuracy", n=400):
        return summary_row("d", "m", ev, Threat("Linf", eps), metric, value, n)

    # monotone up to binomial noise: 31% → 32% passes; 20% → 40% fails
    ok = sanity_checks([row("eps-sweep", 0.1, 0.31), row("eps-sweep", 0.2, 0.32), row("eps-sweep", 0.4, 0.0)])
    assert all(c.passed for c in ok)
    bad = sanity_checks([row("eps-sweep", 0.1, 0.2), row("eps-sweep", 0.2, 0.4), row("eps-sweep", 0.4, 0.0)])
    assert [c.check for c in bad if not c.passed] == ["monotone_eps"]
    # more restarts (margin) giving much higher accuracy than PGD is flagged
    flags = sanity_checks([row("pgd", 0.3, 0.2), row("margin", 0.3, 0.35)])
    assert [c.check for c in flags if not c.passed] == ["stronger_not_weaker"]
    # transfer breaking many points the white-box attacks missed on a composite
    flags = sanity_checks([row("adaptive", 0.3, 0.30, "accuracy_before_transfer"),
                           row("adaptive", 0.3, 0.20, "attack_accuracy")])
    assert [c.check for c in flags if not c.passed] == ["transfer_vs_whitebox"]
    assert math.isclose(0.1, 0.30 - 0.20)
