"""The paper presets (presets/cifar10.yaml, cifar100.yaml, mnist.yaml): their learning-rate schedules decay
where the papers' do, and their REAL code paths (data stage on stand-in files, the preset's architecture,
2 optimizer steps of every objective with the preset's hyper-parameters, the
mixing network on the preset's feature maps, certification of 2 points, AutoAttack end to end through the
mixing network) run on stand-in tensors of the right shape on the CPU.

Shrunk architecture: one forward+backward of the full WRN-34-10 on 2 CIFAR images takes about 4 s on a
loaded 2-core machine, so the training steps (≈ 25 forward+backward passes per PGD-10 objective) use the
same WideResNet class at depth 10, widen 1; the full preset architecture is still built and run forward.
The presets' DAGs (snakemake -n) are checked in test_presets_dag.py (a separate file: three dry runs cost as
much CPU as everything here).
"""

from __future__ import annotations

import math
import pickle
import struct

import numpy as np
import pytest
import torch
from preset_helpers import PRESETS, preset_config

from tradeoff import data
from tradeoff.attacks.autoattack import run_autoattack
from tradeoff.certify.runner import SHARD_COLUMNS, certify_shard, mixed_records, rs_records, select_points
from tradeoff.commands.common import threat_from
from tradeoff.io import ResumableCSV
from tradeoff.mixing.model import MixedClassifier, MixingNetwork, NetworkOptions
from tradeoff.models import build_model
from tradeoff.objectives import build_objective
from tradeoff.probabilistic.records import RAW_COLUMNS, ProbSettings, certify_points, check_settings
from tradeoff.shards import shard_items
from tradeoff.train import TrainConfig, lr_factor, train

torch.set_num_threads(1)

SHAPES = {"cifar10": ((3, 32, 32), 10), "cifar100": ((3, 32, 32), 100), "mnist": ((1, 28, 28), 10)}
OFFICIAL_TRAIN = {"cifar10": 50000, "cifar100": 50000, "mnist": 60000}
SMALL_WRN = {"depth": 10, "widen": 1}
STANDARD_AA_LINF = ["apgd-ce", "apgd-t", "fab-t", "square"]  # AutoAttack's standard ℓ∞ suite


# ------------------------------------------------------------------------------------------------------
# Learning-rate schedules: the lr drops where the papers' schedules drop it
# ------------------------------------------------------------------------------------------------------

# (preset, model) → epochs (counted from 0) at whose first optimizer step the lr is multiplied by gamma
EPOCH_DECAYS = {
    ("cifar10", "standard"): [30, 60],   # Cohen et al.: step 30 of 90 epochs
    ("cifar10", "trades"): [74],         # TRADES: epochs 75–76 (from 1) at lr 0.01
    ("cifar100", "standard"): [30, 60],
    ("cifar100", "trades"): [74],
    ("mnist", "standard"): [54],         # TRADES MNIST: from epoch 55 (from 1)
    ("mnist", "trades"): [54],
}


def _decay_steps(cfg: TrainConfig, steps_per_epoch: int) -> list[int]:
    """Optimizer steps at which the loop's lr factor changes (searched near each milestone)."""
    total = steps_per_epoch * cfg.epochs
    near = {s for m in cfg.milestones for s in range(max(1, math.floor(m * total) - 3), math.floor(m * total) + 4)}
    if cfg.schedule != "multistep":
        near = set(range(1, total, max(1, total // 1000)))
    return sorted(s for s in near if s < total and lr_factor(cfg, s, total) != lr_factor(cfg, s - 1, total))


@pytest.mark.parametrize("name", PRESETS)
def test_schedules_decay_where_the_papers_do(root, name):
    cfg = preset_config(root, name)
    n_train = OFFICIAL_TRAIN[name] - cfg["data"][name]["n_calib"]
    for model, entry in cfg["models"].items():
        tc = TrainConfig.from_mapping({**cfg["train"], **entry.get("train", {})})
        spe = math.ceil(n_train / tc.batch_size)
        steps = _decay_steps(tc, spe)
        if (name, model) in EPOCH_DECAYS:
            assert steps == [e * spe for e in EPOCH_DECAYS[name, model]], (model, steps, spe)
        elif model == "pgd_at" and name != "mnist":  # Madry et al.: 80k iterations, drops at 40k and 60k
            assert tc.epochs * spe == pytest.approx(80000, rel=0.01)
            assert steps == [pytest.approx(40000, rel=0.01), pytest.approx(60000, rel=0.01)]
        elif model == "era":  # the ERA code's "trades" schedule: × 0.1 from 75% of the epochs
            assert len(steps) == 1 and abs(steps[0] / spe - 0.75 * tc.epochs) < 1
        if tc.schedule == "multistep":
            assert tc.gamma == 0.1


# ------------------------------------------------------------------------------------------------------
# The presets' code paths on stand-in tensors
# ------------------------------------------------------------------------------------------------------


def _write_idx(path, array):
    with open(path, "wb") as fh:
        fh.write(struct.pack(">I", 0x0800 + array.ndim) + b"".join(struct.pack(">I", d) for d in array.shape))
        fh.write(array.astype(np.uint8).tobytes())


def stand_in_files(name: str, root, monkeypatch, classes: int, n: int = 8) -> None:
    """Files in torchvision's layout with random pixels (the real ones cannot be downloaded offline)."""
    rng = np.random.default_rng(0)
    if name == "mnist":
        raw = root / "mnist" / "MNIST" / "raw"
        raw.mkdir(parents=True)
        for prefix in ("train", "t10k"):
            _write_idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)))
            _write_idx(raw / f"{prefix}-labels-idx1-ubyte", rng.integers(0, classes, (n,)))
        return
    import torchvision

    folder, key = ("cifar-10-batches-py", "labels") if name == "cifar10" else ("cifar-100-python", "fine_labels")
    base = root / name / folder
    base.mkdir(parents=True)
    files = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"] if name == "cifar10" else ["train", "test"]
    for fname in files:
        with open(base / fname, "wb") as fh:
            pickle.dump({"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                         key: rng.integers(0, classes, n).tolist()}, fh)
    meta_name, meta_key = ("batches.meta", "label_names") if name == "cifar10" else ("meta", "fine_label_names")
    with open(base / meta_name, "wb") as fh:
        pickle.dump({meta_key: [str(i) for i in range(classes)]}, fh)
    cls = getattr(torchvision.datasets, "CIFAR10" if name == "cifar10" else "CIFAR100")
    monkeypatch.setattr(cls, "_check_integrity", lambda self: True)  # stand-ins have other checksums
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda *a, **k: True)


@pytest.mark.slow
@pytest.mark.parametrize("name", PRESETS)
def test_preset_code_paths_on_stand_in_tensors(root, tmp_path, monkeypatch, name):
    cfg = preset_config(root, name)
    shape, classes = SHAPES[name]
    seed = int(cfg["seed"])
    cpu = torch.device("cpu")

    # data stage: the preset's dataset through torchvision's loader, on stand-in files
    stand_in_files(name, tmp_path / "data", monkeypatch, classes)
    section = {**cfg["data"][name], "n_calib": 4, "n_test": 4, "root": str(tmp_path / "data"), "download": False}
    data.prepare(name, section, seed, tmp_path / "data.pt", {"seed": seed})
    splits = data.load(tmp_path / "data.pt")
    assert (splits.input_shape, splits.num_classes, splits.bounds) == (shape, classes, (0.0, 1.0))
    x, y = splits.x("train")[:4], splits.y("train")[:4]
    x_test, y_test = splits.x("test"), splits.y("test")
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    threat = threat_from(cfg["threats"][-1], splits.bounds)  # the largest budget of the preset

    # the preset's architecture at full size: logits and the two feature maps of the mixing network
    arch, options = cfg["model"]["arch"], cfg["model"]["options"]
    full = build_model(arch, name, classes, shape, options).eval()
    with torch.no_grad():
        logits, feats = full.forward_features(x[:2])
    assert logits.shape == (2, classes)
    assert [f.shape[1] for f in feats] == list(full.feature_channels)
    if arch == "wrn34_10":
        assert full.feature_channels == (16 * options["widen"], 32 * options["widen"])
        small_options = SMALL_WRN
    else:
        small_options = options
    del full

    # 2 optimizer steps of every objective the preset trains, with its hyper-parameters and optimizer
    sigma = cfg["certify"]["sigmas"][0]
    entries = {**cfg["models"], f"gauss_aug-{sigma:g}": {"objective": "gauss_aug", "params": {"sigma": sigma}}}
    assert {e["objective"] for e in entries.values()} == {"standard", "pgd_at", "trades", "era", "variance",
                                                          "gauss_aug"}
    models = {}
    for mid, entry in entries.items():
        torch.manual_seed(0)
        model = build_model(arch, name, classes, shape, small_options)
        if entry.get("init"):
            model.load_state_dict(models[entry["init"]].state_dict())
            for p in model.parameters():
                p.requires_grad_(True)
        params = {**cfg["train"], **entry.get("train", {})}
        tc = TrainConfig.from_mapping({**params, "epochs": 1, "batch_size": 2, "seed": seed})
        assert (tc.optimizer, tc.lr, tc.weight_decay) == (params["optimizer"], params["lr"], params["weight_decay"])
        before = [p.detach().clone() for p in model.parameters()]
        objective = build_objective(entry["objective"], entry["params"], threat)
        history = train(model, objective, x, y, tc, tmp_path / f"{mid}.ckpt", mid, cpu, progress=False)
        assert len(history) == 1 and history[0]["skipped_batches"] == 0, mid
        assert all(math.isfinite(v) for v in history[0].values()), (mid, history)
        assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True)), mid
        models[mid] = model.eval()

    # the mixing network on the preset's feature maps, with its constants
    mix = cfg["mixing"]
    opts = NetworkOptions.from_mapping(mix["network"])
    g, h = models[mix["accurate"]], models[mix["robust"]]
    torch.manual_seed(0)
    mixed = MixedClassifier(g, h, MixingNetwork(g.feature_channels, h.feature_channels, opts), "prob",
                            mix["temperatures"]["g"], mix["temperatures"]["h"])
    mixed.train()
    assert torch.isfinite(mixed.forward_all(x).gamma).all()
    mixed.eval()
    xin = x_test[:2].clone().requires_grad_(True)
    res = mixed.forward_all(xin)
    assert res.out.shape == (2, classes)
    assert torch.allclose(torch.logsumexp(res.out, 1), torch.zeros(2), atol=1e-5)
    assert bool(((res.alpha >= opts.alpha_min - 1e-6) & (res.alpha <= opts.alpha_max + 1e-6)).all())
    res.out[torch.arange(2), y_test[:2]].sum().backward()
    assert torch.isfinite(xin.grad).all() and xin.grad.abs().sum() > 0  # attackable end to end

    # AutoAttack's standard ℓ∞ suite at the preset's ε, end to end through the mixing network (tiny budget)
    aa = cfg["attacks"]["autoattack"]
    assert aa["version"] == "standard" and threat.norm == "Linf"
    result = run_autoattack(mixed, x_test[:2], y_test[:2], norm=threat.norm, eps=threat.eps, version="custom",
                            attacks=STANDARD_AA_LINF, n_iter=2, n_target_classes=aa["n_target_classes"],
                            square_queries=2, batch_size=2, seed=seed)
    delta = (result.x_adv - x_test[:2]).abs().max().item()
    assert delta <= threat.eps + 1e-6
    assert float(result.x_adv.min()) >= 0.0 and float(result.x_adv.max()) <= 1.0

    # Cohen et al.'s CERTIFY on 2 points (two of the preset's shards), tiny n, and the mixed radii
    cert = cfg["certify"]
    points = select_points(x_test.shape[0], cert["points"], seed)
    writer = ResumableCSV(tmp_path / "shard.csv", SHARD_COLUMNS)
    for shard in (0, 1):
        certify_shard(models[f"gauss_aug-{sigma:g}"], x_test, y_test, shard_items(points, shard, cert["shards"]),
                      num_classes=classes, sigma=sigma, n0=10, n=60, alpha=cert["alpha"], seed=seed,
                      batch_size=32, out=writer)
    writer.close()
    rs = rs_records(writer.rows)
    assert len(rs) == 2
    assert all(r["radius"] >= 0 and (r["prediction"] != -1 or r["radius"] == 0) for r in rs)
    assert all(r["samples"] == 70 for r in rs)
    with torch.no_grad():
        probs = torch.softmax(models[cert["mix_standard"]](x_test), 1).numpy()
    mixed_rows = mixed_records(writer.rows, dict(enumerate(probs)), cert["mix_alphas"], sigma, cert["alpha"])
    assert len(mixed_rows) == 2 * len(cert["mix_alphas"])
    assert all(r["radius_rs"] >= 0 and r["radius_lipschitz"] >= 0 for r in mixed_rows)

    # probabilistic (ε, κ) certification of 1 point with the preset's κ and α, a small sample cap
    prob_threat = cfg["probabilistic"]["threats"][0]  # the vicinity is the stage's threat ball
    settings = ProbSettings.from_mapping({**cfg["probabilistic"], **prob_threat, "n_max": 1000})
    check_settings(settings)
    assert settings.kappa == 0.01 and settings.eps == pytest.approx(prob_threat["eps"])
    prob_writer = ResumableCSV(tmp_path / "prob.csv", RAW_COLUMNS)
    assert certify_points(models["variance"], x_test, y_test, [0], cfg["probabilistic"]["tests"], settings, seed,
                          prob_writer) == 1
    prob_writer.close()
    assert 0 < int(prob_writer.rows[0]["samples_drawn"]) <= 1000
