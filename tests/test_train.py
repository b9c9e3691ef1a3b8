"""The training loop: exact resumption, NaN guard, foreign/corrupt checkpoints, objectives."""

import pytest
import torch
import torch.nn.functional as F

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


@pytest.mark.parametrize("objective", ["standard", "pgd_at", "trades"])
def test_interrupted_run_resumes_to_identical_weights(tmp_path, objective):
    x, y = toy_data()
    cfg = TrainConfig(epochs=3, batch_size=32, lr=0.01, seed=5)
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
