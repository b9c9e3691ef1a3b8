"""The PGD core: feasibility, optimality on models with known worst cases, restarts, per-sample budgets."""

import torch
import torch.nn.functional as F

from tradeoff.attacks.pgd import Threat, attack_model, dlr_loss, margin_loss, pgd


def linear_model(w, b):
    def f(x):
        s = x.flatten(1) @ w + b
        return torch.stack([-s / 2, s / 2], dim=1)
    return f


def test_linf_and_l2_feasibility_with_bounds():
    torch.manual_seed(0)
    x = torch.rand(32, 1, 8, 8)
    w = torch.randn(64)
    for norm, eps in (("Linf", 0.1), ("L2", 0.7)):
        threat = Threat(norm, eps, (0.0, 1.0))
        x_adv = pgd(lambda z: (z.flatten(1) @ w), x, threat, steps=10, step_size=eps / 4)
        d = (x_adv - x).flatten(1)
        size = d.abs().max(1).values if norm == "Linf" else d.norm(dim=1)
        assert bool((size <= eps + 1e-5).all())
        assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0


def test_linf_pgd_reaches_the_closed_form_worst_case_of_a_linear_score():
    # max_{|δ|∞≤ε} w·(x+δ) = w·x + ε‖w‖₁ (no box): sign steps reach it exactly
    torch.manual_seed(1)
    x, w = torch.randn(16, 20), torch.randn(20)
    threat = Threat("Linf", 0.3, None)
    x_adv = pgd(lambda z: z @ w, x, threat, steps=7, step_size=0.1)  # 7 steps cross the whole cube
    assert torch.allclose(x_adv @ w, x @ w + 0.3 * w.abs().sum(), atol=1e-5)


def test_l2_pgd_reaches_the_closed_form_worst_case():
    torch.manual_seed(2)
    x, w = torch.randn(16, 20), torch.randn(20)
    threat = Threat("L2", 0.5, None)
    x_adv = pgd(lambda z: z @ w, x, threat, steps=100, step_size=0.5)
    gain = (x_adv - x) @ w
    assert bool((gain <= 0.5 * w.norm() + 1e-5).all())  # never beyond the optimum (feasible)
    assert torch.allclose(gain, 0.5 * w.norm().expand(16), rtol=1e-3)


def test_attack_flips_exactly_the_points_within_reach_of_the_boundary():
    torch.manual_seed(3)
    w, b = torch.randn(10), 0.1
    x = torch.randn(400, 10)
    y = ((x @ w + b) > 0).long()
    eps = 0.05
    model = linear_model(w, b)
    x_adv = attack_model(model, x, y, Threat("Linf", eps, None), steps=10, step_size=eps / 4)
    flipped = model(x_adv).argmax(1) != y
    reachable = (x @ w + b).abs() < eps * w.abs().sum()
    assert torch.equal(flipped, reachable)


def test_per_sample_eps_and_zero_budget():
    x = torch.rand(4, 5)
    eps = torch.tensor([0.0, 0.1, 0.2, 0.3])
    x_adv = pgd(lambda z: z.sum(1), x, Threat("Linf", 1.0, None), steps=3, step_size=0.5, eps=eps)
    assert torch.allclose((x_adv - x).abs().max(1).values, eps)


def test_restarts_keep_the_first_success():
    torch.manual_seed(4)
    w = torch.randn(10)
    x = torch.randn(50, 10)
    y = ((x @ w) > 0).long()
    model = linear_model(w, 0.0)
    one = attack_model(model, x, y, Threat("L2", 0.5, None), steps=1, step_size=0.01, restarts=1)
    many = attack_model(model, x, y, Threat("L2", 0.5, None), steps=1, step_size=0.01, restarts=8)
    assert (model(many).argmax(1) != y).sum() >= (model(one).argmax(1) != y).sum()


def test_targeted_attack_reaches_target():
    torch.manual_seed(5)
    w = torch.randn(6)
    x = torch.randn(30, 6) * 0.01
    target = torch.ones(30, dtype=torch.long)
    x_adv = attack_model(linear_model(w, 0.0), x, target, Threat("Linf", 1.0, None), steps=5,
                         step_size=0.5, targeted=True)
    assert bool((linear_model(w, 0.0)(x_adv).argmax(1) == target).all())


def test_losses_signs():
    logits = torch.tensor([[3.0, 1.0, 0.0], [0.0, 2.0, 1.0]])
    y = torch.tensor([0, 0])
    m = margin_loss(logits, y)
    assert m[0] < 0 < m[1]
    d = dlr_loss(logits, y)
    assert d[0] < 0 < d[1]
    assert torch.allclose(F.cross_entropy(logits, y, reduction="none"), -logits.log_softmax(1)[:, 0])


def test_attack_costs_steps_gradient_passes_and_one_forward_per_restart():
    # Each iterate is judged (misclassified or not) on the forward pass of its own gradient step, and a
    # restart's final iterate, which no gradient step follows, costs one no-grad forward. Best-iterate
    # semantics need that last check even for one restart (it used to return its last iterate unjudged):
    # one restart costs steps × (fwd + bwd) + 1 fwd.
    torch.manual_seed(5)
    w = torch.randn(10)
    calls = {"grad": 0, "nograd": 0}

    def model(z):
        calls["grad" if torch.is_grad_enabled() else "nograd"] += 1
        return linear_model(w, 0.0)(z)

    x = torch.randn(50, 10)
    x = x[(x @ w).abs() > 0.1]  # no point within reach of the boundary: nothing breaks, nothing is dropped
    y = (x @ w > 0).long()
    attack_model(model, x, y, Threat("Linf", 1e-4, None), steps=6, step_size=1e-5, restarts=3)
    assert calls == {"grad": 18, "nograd": 3}
    calls.update(grad=0, nograd=0)
    attack_model(model, x, y, Threat("Linf", 1e-4, None), steps=6, step_size=1e-5, restarts=1)
    assert calls == {"grad": 6, "nograd": 1}
    # training's use (no success test, one restart) still makes no extra pass
    calls.update(grad=0, nograd=0)
    pgd(lambda z: model(z)[:, 1], x, Threat("Linf", 1e-4, None), steps=6, step_size=1e-5)
    assert calls == {"grad": 6, "nograd": 0}


def test_best_iterate_is_returned_when_a_later_iterate_is_no_longer_adversarial():
    # A 1-D "model" that is wrong only on a thin slab the ascent passes through: the objective keeps growing
    # beyond the slab, so the last iterate is correct again while an earlier one was adversarial.
    def model(z):
        s = z[:, 0]
        wrong = ((s > 0.25) & (s < 0.35)).float()
        return torch.stack([s * 0 + 10 * (1 - wrong) * 0.1, wrong], dim=1)

    def objective(z):
        return z[:, 0]

    x = torch.zeros(8, 1)
    y = torch.zeros(8, dtype=torch.long)
    threat = Threat("Linf", 1.0, None)
    plain = pgd(objective, x, threat, steps=10, step_size=0.1, rand_init=False)
    assert (model(plain).argmax(1) == y).all()  # the last iterate (1.0) is classified correctly
    best = pgd(objective, x, threat, steps=10, step_size=0.1, rand_init=False,
               success=lambda z: model(z).argmax(1) != y)
    assert (model(best).argmax(1) != y).all()  # iterate 0.3 was adversarial and is kept
    assert torch.allclose(best[:, 0], torch.full((8,), 0.3))
    # indexed objective (broken samples dropped): same guarantee, any number of restarts
    for restarts in (1, 3):
        out = pgd(lambda z, rows: objective(z), x, threat, steps=10, step_size=0.1, restarts=restarts,
                  rand_init=False, success=lambda z, rows: model(z).argmax(1) != y[rows], indexed=True)
        assert (model(out).argmax(1) != y).all()
        assert (out - x).abs().max() <= 1.0 + 1e-6


def _record_every_iterate(net, x, y, trial):
    ever = torch.zeros(x.shape[0], dtype=torch.bool)

    def success(z, rows):
        with torch.no_grad():
            bad = net(z).argmax(1) != y[rows]
        ever[rows[bad]] = True
        return bad

    out = pgd(lambda z, rows: margin_loss(net(z), y[rows]), x, Threat("Linf", 0.4, None), steps=8,
              step_size=0.5, restarts=2, success=success, indexed=True, generator=torch.Generator().manual_seed(trial))
    return out, ever


def test_best_iterate_pgd_never_returns_a_correct_point_when_an_iterate_was_adversarial():
    # random 2-layer nets, random starts, large steps (the ascent oscillates): record every iterate's
    # correctness with an instrumented success test and compare with the returned point
    torch.manual_seed(6)
    for trial in range(5):
        net = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))
        x = torch.randn(64, 6)
        with torch.no_grad():
            y = net(x).argmax(1)
        out, ever = _record_every_iterate(net, x, y, trial)
        with torch.no_grad():
            wrong = net(out).argmax(1) != y
        assert ever.any()
        assert torch.equal(wrong, ever)
