"""Tests of the certification stage: sharded, resumable CERTIFY runs, mixed-classifier records, summary rows,
the config check, the CLI, and soundness against an adaptive PGD attack on the smoothed classifier."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from scipy import stats

from tradeoff import cli
from tradeoff.attacks.pgd import Threat, pgd
from tradeoff.certify import (
    ABSTAIN,
    GaussianNoise,
    Smooth,
    certify_from_counts,
    count_classes,
    mixed_rs_radius,
    point_generator,
    predict_from_counts,
)
from tradeoff.certify.bounds import cp_lower
from tradeoff.certify.checks import min_samples_for_mixed_radius
from tradeoff.certify.runner import (
    SHARD_COLUMNS,
    certified_accuracy,
    certify_shard,
    mixed_id,
    mixed_records,
    mixed_summary_rows,
    rs_records,
    rs_summary_rows,
    select_points,
)
from tradeoff.config import ConfigError, check_config
from tradeoff.errors import TradeoffError
from tradeoff.io import ResumableCSV, read_records, save_torch, write_json
from tradeoff.shards import shard_items

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]

# A linear binary classifier f(x) = 1[w.x + b > 0] on D = 5 inputs: its smoothed probability of class 1
# is Phi((w.x + b) / (sigma ||w||)) in closed form.
D = 5
W = np.array([0.8, -0.5, 0.3, 0.6, -0.4])
W_NORM = float(np.linalg.norm(W))
X0 = np.full(D, 0.5)


def linear_model(dist: float) -> torch.nn.Module:
    """Logits [-(w.x + b), w.x + b] with b chosen so that X0 is at l2 distance ``dist`` on class 1's side."""
    bias = dist * W_NORM - float(W @ X0)
    layer = torch.nn.Linear(D, 2)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(np.stack([-W, W]), dtype=torch.float32))
        layer.bias.copy_(torch.tensor([-bias, bias], dtype=torch.float32))
    return layer.eval()


def slack(rate: float, trials: int) -> float:
    return 3.0 * math.sqrt(rate * (1.0 - rate) / trials)


def _run(model, x, y, indices, path, **kw):
    out = ResumableCSV(path, SHARD_COLUMNS)
    certify_shard(model, x, y, indices, out=out, **kw)
    return out


def _strip(rows):
    stripped = ({k: v for k, v in r.items() if k != "seconds"} for r in rows)
    return sorted(stripped, key=lambda r: int(r["index"]))


# ------------------------------------------------------------------------------------ points and shards


def test_select_points_and_shards_partition() -> None:
    sel = select_points(360, 180, seed=0)
    assert len(sel) == 180 and len(set(sel.tolist())) == 180 and np.all(np.diff(sel) > 0)
    assert sel.min() >= 0 and sel.max() < 360
    assert np.array_equal(sel, select_points(360, 180, seed=0))
    assert not np.array_equal(sel, select_points(360, 180, seed=1))
    assert np.array_equal(select_points(40, None, 0), np.arange(40))
    assert np.array_equal(select_points(40, 100, 0), np.arange(40))
    for shards in (1, 3, 7):
        parts = [shard_items(sel, s, shards) for s in range(shards)]
        assert sorted(np.concatenate(parts).tolist()) == sel.tolist()
    with pytest.raises(TradeoffError):
        shard_items(sel, 3, 3)


@pytest.mark.slow
def test_shards_resume_and_batch_size_give_identical_records(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 12), torch.nn.ReLU(),
                                torch.nn.Linear(12, 4)).eval()
    x, y = torch.rand(9, 1, 4, 4), torch.randint(0, 4, (9,))
    kw = dict(num_classes=4, sigma=0.3, n0=30, n=250, alpha=0.01, seed=5)
    indices = select_points(9, 7, seed=3)
    whole = _run(model, x, y, indices, tmp_path / "whole.csv", batch_size=64, **kw)
    # two shards, another batch size; shard 0 is "killed" after two points and leaves a cut line behind
    shard_rows = []
    for s in range(2):
        part = shard_items(indices, s, 2)
        path = tmp_path / f"s{s}.csv"
        if s == 0:
            first = _run(model, x, y, part[:2], path, batch_size=37, **kw)
            first.close()
            with open(first.partial, "a", encoding="utf-8") as fh:
                fh.write("99,1,1,0.5")  # a row cut mid-write
        resumed = _run(model, x, y, part, path, batch_size=37, **kw)
        assert len(resumed.rows) == len(part)
        resumed.finalize({}, sort_key="index")
        shard_rows.extend(read_records(path)[0].astype({"counts": str}).to_dict("records"))
    assert _strip(whole.rows) == _strip({k: str(v) for k, v in r.items()} for r in shard_rows)
    for row in whole.rows:  # the stored counts reproduce the certificate
        counts = np.array([int(c) for c in row["counts"].split()])
        assert counts.sum() == 250 and int(row["samples"]) == 280
        counts0 = np.eye(4, dtype=int)[int(row["selected"])]
        res = certify_from_counts(counts0, counts, 0.3, 0.01)
        assert res.prediction == int(row["prediction"]) and res.radius == pytest.approx(float(row["radius"]))


# --------------------------------------------------------------- statistics of the whole pipeline (torch)


@pytest.mark.slow
def test_pipeline_radius_exceeds_true_distance_at_most_alpha_and_tightens(tmp_path: Path) -> None:
    sigma, dist, alpha, trials = 0.5, 0.6, 0.05, 300
    model = linear_model(dist)
    x = torch.tensor(np.tile(X0, (trials, 1)), dtype=torch.float32)  # one point, 300 independent streams
    y = torch.ones(trials, dtype=torch.long)
    gaps = {}
    for n in (100, 1500):
        out = _run(model, x, y, range(trials), tmp_path / f"lin{n}.csv", num_classes=2,
                   sigma=sigma, n0=20, n=n, alpha=alpha, seed=1, batch_size=2000)
        out.close()
        pred = np.array([int(r["prediction"]) for r in out.rows])
        radius = np.array([float(r["radius"]) for r in out.rows])
        wrong = np.mean((pred == 0) | ((pred == 1) & (radius > dist)))
        assert wrong <= alpha + slack(alpha, trials)
        gaps[n] = dist - radius.mean()
    assert gaps[100] > gaps[1500] > 0 and gaps[1500] < 0.15 * dist


@pytest.mark.slow
def test_mixed_records_sound_on_linear_model_and_equal_cohen_at_alpha_one(tmp_path: Path) -> None:
    # Worst-case standard model: all its probability on class 0. The mixed classifier then predicts 1
    # iff p_1 > 1/(2a), i.e. exactly on the l2 ball of radius dist - sigma Phi^{-1}(1/(2a)).
    sigma, dist, alpha, trials = 0.5, 0.9, 0.05, 250
    model = linear_model(dist)
    x = torch.tensor(np.tile(X0, (trials, 1)), dtype=torch.float32)
    y = torch.ones(trials, dtype=torch.long)
    out = _run(model, x, y, range(trials), tmp_path / "mix.csv", num_classes=2,
               sigma=sigma, n0=20, n=400, alpha=alpha, seed=2, batch_size=2000)
    out.close()
    g = {i: np.array([1.0, 0.0]) for i in range(trials)}
    alphas = [0.6, 0.8, 1.0]
    mixed = mixed_records(out.rows, g, alphas, sigma, alpha)
    for a in alphas:
        sel = [r for r in mixed if r["alpha"] == a]
        true_radius = dist - sigma * stats.norm.ppf(1 / (2 * a))
        wrong = np.mean([(r["prediction"] == 0) or (r["prediction"] == 1 and r["radius_rs"] > true_radius)
                         for r in sel])
        assert wrong <= alpha + slack(alpha, trials)
        assert all(r["radius_rs"] >= r["radius_lipschitz"] >= 0 for r in sel)
    # at a = 1 the mixed radius is Cohen's two-sided radius, i.e. Cohen's at level alpha/2 (two classes)
    for row, rec in zip(out.rows, [r for r in mixed if r["alpha"] == 1.0], strict=True):
        counts = np.array([int(c) for c in row["counts"].split()])
        cohen = certify_from_counts(np.eye(2, dtype=int)[int(row["selected"])], counts, sigma, alpha / 2)
        assert rec["radius_rs"] == pytest.approx(cohen.radius, rel=1e-9, abs=1e-12)


# --------------------------------------------------------------------------- summary rows, accuracy


def test_certified_accuracy_and_summary_rows() -> None:
    pred = np.array([1, 1, ABSTAIN, 0, 2])
    label = np.array([1, 1, 1, 1, 2])
    radius = np.array([0.5, 0.1, 0.0, 0.9, 0.3])
    assert certified_accuracy(pred, label, radius, 0.0) == pytest.approx(3 / 5)
    assert certified_accuracy(pred, label, radius, 0.3) == pytest.approx(2 / 5)
    assert certified_accuracy(pred, label, radius, 0.6) == 0.0
    shard = [{"index": i, "label": int(label[i]), "prediction": int(pred[i]), "radius": float(radius[i]),
              "p_lower": 0.9, "samples": 120, "seconds": 0.1, "selected": max(int(pred[i]), 0),
              "counts": "2 95 3" if pred[i] != ABSTAIN else "40 40 20"} for i in range(5)]
    rs = rs_records(shard)
    radii = [0.0, 0.25, 0.5]
    rows = rs_summary_rows("digits", "gauss_aug-0.25", rs, radii)
    cert = [r for r in rows if r["metric"] == "certified_accuracy"]
    assert [r["eps"] for r in cert] == radii and {r["norm"] for r in rows} == {"L2"}
    assert {r["evaluation"] for r in rows} == {"certify-rs"} and {r["n"] for r in rows} == {5}
    assert [r["value"] for r in cert] == pytest.approx([0.6, 0.4, 0.2])
    probs = {i: np.array([0.1, 0.8, 0.1]) for i in range(5)}
    mixed = mixed_records(shard, probs, [0.7, 1.0], 0.25, 0.001)
    mrows = mixed_summary_rows("digits", "gauss_aug-0.25", mixed, radii)
    assert {r["classifier"] for r in mrows} == {mixed_id(0.7, "gauss_aug-0.25"), "mix-prob-1-gauss_aug-0.25"}
    assert mixed_id(0.7, "gauss_aug-0.25") == "mix-prob-0.7-gauss_aug-0.25"
    assert {r["evaluation"] for r in mrows} == {"certify-mixed-rs", "certify-mixed-lipschitz",
                                                "certify-mixed-lipschitz-sharp"}
    assert all(r["radius_lipschitz_sharp"] == pytest.approx(2 * r["radius_lipschitz"]) for r in mixed)
    for name in {r["classifier"] for r in mrows}:
        sharp = [r["value"] for r in mrows if r["classifier"] == name and r["metric"] == "certified_accuracy"
                 and r["evaluation"] == "certify-mixed-lipschitz-sharp"]
        paper = [r["value"] for r in mrows if r["classifier"] == name and r["metric"] == "certified_accuracy"
                 and r["evaluation"] == "certify-mixed-lipschitz"]
        assert all(s >= q for s, q in zip(sharp, paper, strict=True))
        for ev in ("certify-mixed-rs", "certify-mixed-lipschitz", "certify-mixed-lipschitz-sharp"):
            vals = [r["value"] for r in mrows if r["classifier"] == name and r["evaluation"] == ev
                    and r["metric"] == "certified_accuracy"]
            assert len(vals) == 3 and all(a >= b for a, b in zip(vals, vals[1:], strict=False))


# ------------------------------------------------------------------------------------------ config


def test_min_samples_for_mixed_radius_closed_form() -> None:
    for alpha in (0.001, 0.05):
        for a in (0.55, 0.7, 1.0):
            n = min_samples_for_mixed_radius(alpha, a)
            # brute force with scipy's exact bound and Theorem 2's radius: positive from n draws on, not before
            def radius(m: int, a: float = a, alpha: float = alpha) -> float:
                q = float(stats.beta.ppf(alpha / 2, m, 1))
                return float(mixed_rs_radius(q, 1.0 - q, a, 1.0))

            assert radius(n) > 0.0 and radius(n - 1) == 0.0
            assert cp_lower(n, n, alpha / 2) > 1 / (2 * a) >= cp_lower(n - 1, n - 1, alpha / 2)
    assert min_samples_for_mixed_radius(0.001, 0.5) is None


def test_config_check_rejects_hopeless_sample_sizes() -> None:
    schema = ROOT / "workflow" / "schemas" / "config.schema.yaml"
    base = yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))
    check_config(base, schema)
    alpha = base["certify"]["alpha"]
    need = int(math.floor(math.log(1 / alpha) / math.log(2))) + 1  # n > log(alpha) / log(1/2)
    cases = [
        ("n", need - 1, "certify.n"),
        ("mix_alphas", [0.5], "certify.mix_alphas"),
        ("mix_standard", "nope", "certify.mix_standard"),
        ("n", -3, "certify.n"),
        ("alpha", 0.7, "certify.alpha"),
        ("sigmas", [0.0], "certify.sigmas"),
    ]
    for key, value, where in cases:
        cfg = copy.deepcopy(base)
        cfg["certify"][key] = value
        with pytest.raises(ConfigError) as err:
            check_config(cfg, schema)
        assert where in str(err.value) and "\n" not in str(err.value)
    cfg = copy.deepcopy(base)
    cfg["certify"].update(n=need, mix_alphas=[1.0])
    n_mix = min_samples_for_mixed_radius(alpha, 1.0)
    if need < n_mix:
        with pytest.raises(ConfigError, match="certify.mix_alphas"):
            check_config(cfg, schema)
    cfg["certify"].update(n=n_mix)
    check_config(cfg, schema)


# ---------------------------------------------------------------------------------------------- CLI


@pytest.mark.slow
def test_cli_shard_resume_and_merge(tmp_path: Path) -> None:
    from tradeoff import data as data_mod
    from tradeoff.models import build_model

    data = tmp_path / "data.pt"
    data_mod.prepare("digits", {"n_calib": 20, "n_test": 10}, 0, data, {})
    specs = {}
    for name, seed in (("smooth", 0), ("std", 1)):
        torch.manual_seed(seed)
        model = build_model("small_cnn", "digits", 10, (1, 8, 8), {"width": 4})
        digest = save_torch(model.state_dict(), tmp_path / f"{name}.pt")
        write_json(tmp_path / f"{name}.json", {"kind": "base", "arch": "small_cnn", "dataset": "digits",
                                               "num_classes": 10, "input_shape": [1, 8, 8],
                                               "arch_options": {"width": 4}, "sha256": digest})
        specs[name] = str(tmp_path / f"{name}.json")
    params = '{"n0": 10, "n": 60, "alpha": 0.01, "points": 7, "batch_size": 25}'
    common = ["--threads", "1", "--device", "cpu", "--no-progress", "--seed", "3", "--data", str(data)]
    outs = []
    for s in range(2):
        out = tmp_path / f"shard{s}.csv"
        args = ["certify", *common, "--classifier", specs["smooth"], "--sigma", "0.5",
                "--params", params, "--shard", str(s), "--shards", "2", "--out", str(out)]
        assert cli.main([*args, "--stop-after", "1"]) == 0
        assert not out.exists() and out.with_name(out.name + ".partial").exists()
        assert cli.main(args) == 0
        assert out.exists() and not out.with_name(out.name + ".partial").exists()
        outs.append(str(out))
    one = tmp_path / "one.csv"
    assert cli.main(["certify", *common, "--classifier", specs["smooth"], "--sigma", "0.5",
                     "--params", params.replace('"batch_size": 25', '"batch_size": 7'), "--shard", "0",
                     "--shards", "1", "--out", str(one)]) == 0
    merged = sorted(sum((read_records(p)[0].drop(columns="seconds").to_dict("records") for p in outs), []),
                    key=lambda r: r["index"])
    assert merged == read_records(one)[0].drop(columns="seconds").to_dict("records")
    merge_params = ('{"n0": 10, "n": 60, "alpha": 0.01, "points": 7, "radii": [0, 0.1], '
                    '"mix_alphas": [0.8, 1]}')
    rs, mixed = tmp_path / "rs.csv", tmp_path / "mixed.csv"
    assert cli.main(["merge", "certify", *common, "--name", "gauss_aug-0.5", "--standard", specs["std"],
                     "--sigma", "0.5", "--params", merge_params, "--out-rs", str(rs),
                     "--out-mixed", str(mixed), *outs]) == 0
    # a merge that would certify with another sigma than the noise was drawn with is refused
    assert cli.main(["merge", "certify", *common, "--name", "gauss_aug-0.5", "--standard", specs["std"],
                     "--sigma", "0.25", "--params", merge_params, "--out-rs", str(tmp_path / "bad.csv"),
                     "--out-mixed", str(tmp_path / "bad_mixed.csv"), *outs]) == 3
    assert not (tmp_path / "bad.csv").exists()
    frame, meta = read_records(rs)
    assert len(frame) == 7 and {r["evaluation"] for r in meta["summary_rows"]} == {"certify-rs"}
    mframe, mmeta = read_records(mixed)
    assert len(mframe) == 14
    assert {r["classifier"] for r in mmeta["summary_rows"]} == {"mix-prob-0.8-gauss_aug-0.5",
                                                                "mix-prob-1-gauss_aug-0.5"}


# -------------------------------------------------------------------- soundness against an attack


class _SmoothedSoft(torch.nn.Module):
    """Differentiable surrogate of the smoothed classifier: mean softmax over fixed noise draws
    (common random numbers across PGD steps, as in Salman et al.'s SmoothAdv)."""

    def __init__(self, base: torch.nn.Module, noise: torch.Tensor) -> None:
        super().__init__()
        self.base, self.noise = base, noise  # noise [B, m, D]

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        b, m, d = self.noise.shape
        probs = torch.softmax(self.base((z[:, None, :] + self.noise).reshape(b * m, d)), dim=1)
        return probs.reshape(b, m, -1).mean(1)


def test_no_pgd_attack_flips_a_point_inside_its_certified_radius() -> None:
    torch.manual_seed(0)
    dim, classes, sigma, alpha = 6, 3, 0.5, 0.001
    base = torch.nn.Sequential(torch.nn.Linear(dim, 32), torch.nn.ReLU(), torch.nn.Linear(32, 32),
                               torch.nn.ReLU(), torch.nn.Linear(32, classes)).eval()
    for p in base.parameters():
        p.requires_grad_(False)
    smooth = Smooth(base, classes, sigma, batch_size=5000)
    xs = torch.randn(30, dim)
    certs = [smooth.certify(xs[i], 100, 4000, alpha, point_generator(0, i)) for i in range(len(xs))]
    keep = [i for i, c in enumerate(certs) if c.prediction != ABSTAIN and c.radius > 0.05]
    assert len(keep) >= 8
    x = xs[keep]
    c = torch.tensor([certs[i].prediction for i in keep])
    radius = torch.tensor([certs[i].radius for i in keep])
    noise = GaussianNoise(sigma).sample((len(keep), 256, dim), 1, torch.Generator().manual_seed(1))[0]
    soft = _SmoothedSoft(base, noise)

    def margin(z: torch.Tensor) -> torch.Tensor:  # best other class minus the certified one
        p = soft(z)
        return p.scatter(1, c[:, None], -1.0).max(1).values - p.gather(1, c[:, None]).squeeze(1)

    def attack(r: torch.Tensor) -> torch.Tensor:
        return pgd(margin, x, Threat("L2", 1.0, None), eps=r, steps=40, step_size=r / 8, restarts=2,
                   generator=torch.Generator().manual_seed(2))

    def smoothed_at(z: torch.Tensor, stream: int) -> tuple[list[int], np.ndarray]:
        counts = [count_classes(base, z[k], 10_000, GaussianNoise(sigma), classes, 5000,
                                point_generator(9, k, stream)) for k in range(len(z))]
        preds = [predict_from_counts(cnt, alpha) for cnt in counts]
        return preds, np.array([cnt[int(ck)] / 10_000 for cnt, ck in zip(counts, c, strict=True)])

    inside, p_inside = smoothed_at(attack(0.99 * radius), 1)
    _, p_clean = smoothed_at(x, 2)
    # inside the certified radius the smoothed prediction never confidently changes
    assert all(pred in (int(ck), ABSTAIN) for pred, ck in zip(inside, c, strict=True))
    # the attack is not vacuous: it pushes the certified class's probability close to 1/2 (the radius is
    # nearly tight), and a little beyond the radius it flips most points
    assert np.mean(p_clean - p_inside) > 0.1 and np.mean(p_inside) < 0.7
    outside, _ = smoothed_at(attack(radius + 2 * sigma), 3)
    assert sum(pred not in (int(ck), ABSTAIN) for pred, ck in zip(outside, c, strict=True)) >= len(keep) / 2
