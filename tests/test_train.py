"""The training loop: exact resumption, NaN guard, foreign/corrupt checkpoints, objectives."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tradeoff.attacks.pgd import Threat
from tradeoff.io import ArtifactError
from tradeoff.models import build_model
from tradeoff.objectives import build_objective
from tradeoff.train import TrainConfig, TrainingDiverged, train

DEVICE = torch.device("cpu")


def toy_data(n=96):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, 1, 8, 8, generator=g)
    y = (x.mean((1, 2, 3)) > 0.5).long() + 2 * (x[:, 0, 0, 0] > 0.5).long()
    return x, y


def make_model():
    torch.manual_seed(0)
    return build_model("small_cnn", "digits", 10, (1, 8, 8), {"width": 4})


@pytest.mark.parametrize("objective,augment", [("standard", "none"), ("pgd_at", "none"), ("trades", "none"),
                                               ("pgd_at", "crop_flip")])
def test_interrupted_run_resumes_to_identical_weights(tmp_path, objective, augment):
    x, y = toy_data()
    cfg = TrainConfig(epochs=3, batch_size=32, lr=0.01, seed=5, augment=augment)
    obj = build_objective(objective, {"steps": 2}, Threat("Linf", 0.1))
    full = make_model()
    train(full, obj, x, y, cfg, tmp_path / "a.pt", "run", DEVICE, progress=False)
    part = make_model()
    h1 = train(part, obj, x, y, cfg, tmp_path / "b.pt", "run", DEVICE, progress=False, stop_after_epoch=0)
    assert len(h1) == 1
    resumed = make_model()
    h2 = train(resumed, obj, x, y, cfg, tmp_path / "b.pt", "run", DEVICE, progress=False)
    assert [r["epoch"] for r in h2] == [0, 1, 2]
    for a, b in zip(full.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_augmentation_changes_the_batches_and_checks_its_inputs(tmp_path):
    x, y = toy_data(32)
    seen = {}

    def spy(name):
        def objective(model, xb, yb):
            seen.setdefault(name, []).append(xb.clone())
            return F.cross_entropy(model(xb), yb), {}
        return objective

    for augment in ("none", "crop_flip"):
        cfg = TrainConfig(epochs=1, batch_size=32, seed=2, augment=augment)
        train(make_model(), spy(augment), x, y, cfg, tmp_path / f"{augment}.pt", augment, DEVICE, progress=False)
    plain, augmented = seen["none"][0], seen["crop_flip"][0]
    assert plain.shape == augmented.shape and not torch.equal(plain, augmented)
    assert set(plain.flatten().tolist()) >= set(augmented.flatten().tolist()) - {0.0}  # pixels moved, not changed
    with pytest.raises(ValueError, match="image inputs"):
        train(nn.Linear(2, 2), spy("points"), torch.rand(8, 2), torch.zeros(8, dtype=torch.long),
              TrainConfig(augment="crop_flip"), tmp_path / "never.pt", "points", DEVICE, progress=False)
    with pytest.raises(ValueError, match="none, crop_flip"):
        train(make_model(), spy("bad"), x, y, TrainConfig(augment="flip"), tmp_path / "never.pt", "bad", DEVICE,
              progress=False)
    assert "points" not in seen and "bad" not in seen and not (tmp_path / "never.pt").exists()


def test_checkpoint_of_another_run_is_ignored(tmp_path):
    x, y = toy_data()
    cfg = TrainConfig(epochs=2, batch_size=32, seed=1)
    obj = build_objective("standard", {}, Threat("Linf", 0.1))
    train(make_model(), obj, x, y, cfg, tmp_path / "c.pt", "run-a", DEVICE, progress=False, stop_after_epoch=0)
    history = train(make_model(), obj, x, y, cfg, tmp_path / "c.pt", "run-b", DEVICE, progress=False)
    assert [r["epoch"] for r in history] == [0, 1]


def test_corrupt_checkpoint_is_reported_by_name(tmp_path):
    path = tmp_path / "broken.pt"
    x, y = toy_data()
    cfg = TrainConfig(epochs=1, batch_size=32)
    obj = build_objective("standard", {}, Threat("Linf", 0.1))
    train(make_model(), obj, x, y, cfg, path, "r", DEVICE, progress=False)
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with pytest.raises(ArtifactError, match="broken.pt"):
        train(make_model(), obj, x, y, cfg, path, "r", DEVICE, progress=False)


def test_nan_guard_raises():
    x, y = toy_data()

    def poisoned(model, xb, yb):
        return model(xb).sum() * float("nan"), {}

    with pytest.raises(TrainingDiverged, match="non-finite"):
        train(make_model(), poisoned, x, y, TrainConfig(epochs=1, batch_size=32), "/tmp/never-written.pt",
              "nan", DEVICE, progress=False)


def test_trades_loss_matches_reference_formula():
    torch.manual_seed(0)
    model = make_model().eval()
    x, y = toy_data(8)
    obj = build_objective("trades", {"steps": 0, "beta": 2.0}, Threat("Linf", 0.0))
    loss, _ = obj(model, x, y)
    # with ε = 0 the adversarial point is x itself (plus the 0.001·N start clipped to the 0 ball): KL = 0
    assert torch.allclose(loss, F.cross_entropy(model(x), y), atol=1e-6)


def test_pgd_at_trains_on_points_inside_the_ball():
    torch.manual_seed(0)
    model = make_model()
    x, y = toy_data(16)
    seen = []
    original_forward = model.forward

    def spy(inp):
        seen.append(inp.detach().clone())
        return original_forward(inp)

    model.forward = spy
    obj = build_objective("pgd_at", {"steps": 3}, Threat("Linf", 0.05))
    obj(model, x, y)
    last = seen[-1]
    assert float((last - x).abs().max()) <= 0.05 + 1e-6 and float((last - x).abs().max()) > 0.01


@pytest.mark.parametrize("objective", ["pgd_at", "trades"])
def test_inner_attack_leaves_the_model_trainable(objective):
    """The inner maximization runs in eval mode with frozen parameters; afterwards the model is back in
    training mode, every parameter trainable again and the loss has a gradient for each of them."""
    torch.manual_seed(0)
    model = make_model().train()
    frozen_during = []
    original_forward = model.forward

    def spy(inp):
        frozen_during.append((model.training, any(p.requires_grad for p in model.parameters())))
        return original_forward(inp)

    model.forward = spy
    x, y = toy_data(16)
    loss, _ = build_objective(objective, {"steps": 3}, Threat("Linf", 0.05))(model, x, y)
    assert (False, False) in frozen_during          # the inner attack: eval mode, no parameter gradient
    assert frozen_during[-1] == (True, True)        # the outer loss: training mode, trainable
    assert model.training and all(p.requires_grad for p in model.parameters())
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_eps_ramp_grows_the_attack_budget_linearly_then_holds():
    threat = Threat("Linf", 0.3, (0.0, 1.0))
    objective = build_objective("pgd_at", {"steps": 2, "step_rel": 0.5, "eps_ramp": 0.5}, threat)
    x, y = toy_data(8)
    model = make_model()
    seen = []
    for done in (0.0, 0.1, 0.25, 0.5, 0.9):
        objective.set_progress(done)
        torch.manual_seed(0)
        _, stats = objective(model, x, y)
        seen.append(stats["eps"])
    assert seen == pytest.approx([0.0, 0.06, 0.15, 0.3, 0.3], abs=1e-9)
    # the inner attack stays inside the current budget
    objective.set_progress(0.1)
    captured = {}
    inner = objective.inner

    def spy(m, xb, yb):
        captured["threat"] = objective.threat.scaled(objective.scale)
        return inner(m, xb, yb)

    objective.inner = spy
    objective(model, x, y)
    assert captured["threat"].eps == pytest.approx(0.06)


def test_ramped_training_resumes_to_identical_weights(tmp_path):
    x, y = toy_data()
    cfg = TrainConfig(epochs=3, batch_size=32, lr=1e-2, seed=3, schedule="cyclic")
    params = {"steps": 2, "step_rel": 0.5, "eps_ramp": 0.6}
    threat = Threat("Linf", 0.2, (0.0, 1.0))
    full = make_model()
    train(full, build_objective("pgd_at", params, threat), x, y, cfg, tmp_path / "a.pt", "r", DEVICE,
          progress=False)
    part = make_model()
    train(part, build_objective("pgd_at", params, threat), x, y, cfg, tmp_path / "b.pt", "r", DEVICE,
          progress=False, stop_after_epoch=0)
    resumed = make_model()
    history = train(resumed, build_objective("pgd_at", params, threat), x, y, cfg, tmp_path / "b.pt", "r",
                    DEVICE, progress=False)
    for a, b in zip(full.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert history[0]["eps"] < history[1]["eps"] < history[2]["eps"] <= 0.2 + 1e-9


def test_cyclic_schedule_rises_to_the_peak_at_two_fifths_and_falls_to_zero():
    from tradeoff.train import lr_factor

    cfg = TrainConfig(schedule="cyclic")
    factors = [lr_factor(cfg, s, 100) for s in range(100)]
    assert factors[39] == pytest.approx(1.0) and max(factors) == pytest.approx(1.0)
    assert factors[0] == pytest.approx(1 / 40) and factors[-1] == pytest.approx(0.0)
    assert all(a < b for a, b in zip(factors[:39], factors[1:40], strict=True)) and all(
        a > b for a, b in zip(factors[39:-1], factors[40:], strict=True))
