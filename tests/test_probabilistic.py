"""Probabilistic (eps, kappa) robustness: variance-minimizing objective, multi-kappa sequential driver,
per-sample records, metrics, resumption, and the error rates of the configured tests."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
import yaml
from scipy import stats

from tradeoff.attacks.pgd import Threat
from tradeoff.certify import (
    UniformL2Ball,
    UniformLinfBall,
    point_generator,
)
from tradeoff.io import ResumableCSV, read_records, write_records
from tradeoff.objectives import build_objective
from tradeoff.objectives.variance import mean_std_loss, vicinity_samples
from tradeoff.probabilistic.records import (
    RAW_COLUMNS,
    ProbSettings,
    certify_points,
    check_settings,
    decide_records,
    decisions,
    decode_counts,
    defense_success_rate,
    encode_counts,
    metrics,
    summary_rows,
)
from tradeoff.probabilistic.sequential import (
    NaiveSequentialTest,
    Outcome,
    SequentialTest,
    fixed_test,
    replay_sequential,
    run_sequential,
    run_sequential_many,
)

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]


def slack(rate: float, trials: int) -> float:
    return 3.0 * math.sqrt(rate * (1.0 - rate) / trials)


# ------------------------------------------------------------------------------------ variance objective


def test_mean_std_loss_hand_computed() -> None:
    losses = torch.tensor([[1.0, 2.0, 3.0, 4.0], [2.0, 2.0, 2.0, 2.0]], requires_grad=True)
    # row 1: mean 2.5, population variance (2.25 + 0.25 + 0.25 + 2.25) / 4 = 1.25; row 2: mean 2, std 0
    expected = ((2.5 + 0.5 * math.sqrt(1.25)) + 2.0) / 2
    value = mean_std_loss(losses, lam=0.5)
    assert value.item() == pytest.approx(expected, rel=1e-6)
    value.backward()
    assert torch.isfinite(losses.grad).all()  # zero spread must not give NaN gradients
    # d/dl_j [mean + lam std] = 1/n + lam (l_j - mean) / (n std), halved by the batch mean
    row = (0.25 + 0.5 * (torch.tensor([1.0, 2.0, 3.0, 4.0]) - 2.5) / (4 * math.sqrt(1.25))) / 2
    torch.testing.assert_close(losses.grad[0], row)
    assert mean_std_loss(losses.detach(), lam=0.0).item() == pytest.approx(2.25)
    with pytest.raises(ValueError):
        mean_std_loss(torch.ones(3, 1), lam=1.0)


class _Linear(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.fc = torch.nn.Linear(12, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1))


@pytest.mark.parametrize("norm", ["Linf", "L2"])
def test_variance_objective_equals_mean_plus_lam_std_of_its_vicinity_losses(norm: str) -> None:
    model = _Linear()
    x = torch.rand(5, 3, 4)
    y = torch.tensor([0, 1, 2, 0, 1])
    n, lam, eps = 6, 0.7, 0.2
    objective = build_objective("variance", {"n": n, "lam": lam, "eps": eps}, Threat(norm, 0.3))
    torch.manual_seed(11)
    loss, stats_ = objective(model, x, y)
    # recompute from the same noise: same default-generator state, same sampler, by hand
    torch.manual_seed(11)
    sampler = UniformLinfBall(eps) if norm == "Linf" else UniformL2Ball(eps)
    t = (x.unsqueeze(1) + sampler.sample((3, 4), 5 * n, torch.default_generator).view(5, n, 3, 4)).clamp(0, 1)
    per = torch.stack([torch.stack([F.cross_entropy(model(t[i, j:j + 1]), y[i:i + 1]) for j in range(n)])
                       for i in range(5)])
    by_hand = np.mean([p.mean().item() + lam * p.std(unbiased=False).item() for p in per])
    assert loss.item() == pytest.approx(by_hand, rel=1e-5)
    assert stats_["mean_l"] == pytest.approx(per.mean().item(), rel=1e-5)


def test_variance_objective_options() -> None:
    model = _Linear()
    x, y = torch.rand(4, 3, 4), torch.tensor([0, 1, 2, 0])
    threat = Threat("Linf", 0.3)
    # KL to the clean prediction vanishes when the vicinity is tiny: the loss is then the clean CE
    objective = build_objective("variance", {"n": 3, "eps": 1e-7, "loss": "kl", "clean_weight": 1.0}, threat)
    loss, _ = objective(model, x.clamp(0.1, 0.9), y)
    assert loss.item() == pytest.approx(F.cross_entropy(model(x.clamp(0.1, 0.9)), y).item(), abs=1e-4)
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    for bad in ({"n": 1}, {"loss": "kl"}, {"loss": "mse"}, {"lam": -1.0}):
        with pytest.raises(ValueError):
            build_objective("variance", bad, threat)


@pytest.mark.parametrize("norm", ["Linf", "L2"])
def test_training_vicinity_is_uniform_ball_then_clipped(norm: str) -> None:
    eps, n = 0.25, 4000
    x = torch.full((1, 2, 3), 0.5)
    sampler = UniformLinfBall(eps) if norm == "Linf" else UniformL2Ball(eps)
    t = vicinity_samples(x, n, sampler, None, point_generator(1, 0))[0].reshape(n, 6).double()
    d = (t - 0.5).numpy()
    if norm == "Linf":
        assert np.abs(d).max() <= eps + 1e-7
        assert stats.kstest(d.ravel(), stats.uniform(loc=-eps, scale=2 * eps).cdf).pvalue > 1e-3
    else:
        r = np.linalg.norm(d, axis=1)
        assert r.max() <= eps * (1 + 1e-6)
        assert stats.kstest(r / eps, lambda s: np.clip(s, 0, 1) ** 6).pvalue > 1e-3  # P(|t| <= s) = s^d
    clipped = vicinity_samples(torch.full((1, 2, 3), 0.9), 500, sampler, (0.0, 1.0), point_generator(1, 1))
    assert clipped.max() <= 1.0 and clipped.min() >= 0.0 and (clipped == 1.0).any()


# ----------------------------------------------------------------------- one stream, many kappa designs


def test_multi_design_replay_equals_separate_runs() -> None:
    kappas = [0.005, 0.01, 0.05, 0.1]
    designs = [SequentialTest(k, 0.01, 5000) for k in kappas]
    for p in (1.0, 0.999, 0.99, 0.97, 0.93, 0.5):
        for rep in range(5):
            bits = np.random.default_rng([rep, int(p * 1000)]).random(5000) < p

            def stream(bits: np.ndarray = bits) -> object:
                pos = 0

                def draw(m: int) -> int:
                    nonlocal pos
                    s = int(bits[pos:pos + m].sum())
                    pos += m
                    return s

                return draw

            counts = run_sequential_many(stream(), designs)
            for design in designs:
                outcome, used, k = replay_sequential(counts, design)
                assert (outcome, used) == run_sequential(stream(), design)
                assert k == int(bits[:used].sum())
            assert max(counts) == max(replay_sequential(counts, d)[1] for d in designs)  # stops when all stopped
    with pytest.raises(ValueError):
        replay_sequential({designs[0].looks[0]: 0}, designs[1])


def _design_rates(rule, p: float, inputs: int, seed: int) -> tuple[float, float]:
    """Vectorised: fraction certified and mean samples of a look-based rule on Bernoulli(p) oracles."""
    rng = np.random.default_rng(seed)
    looks = np.asarray(rule.looks)
    k_rob, k_not = rule.critical_counts()
    k = np.cumsum(rng.binomial(np.diff(np.concatenate([[0], looks])), p, size=(inputs, len(looks))), axis=1)
    robust, decided = k >= k_rob, (k >= k_rob) | (k <= k_not)
    first = np.where(decided.any(axis=1), decided.argmax(axis=1), len(looks) - 1)
    return float(robust[np.arange(inputs), first].mean()), float(looks[first].mean())


def _settings(path: Path) -> ProbSettings:
    config = yaml.safe_load(path.read_text())
    # the vicinity is a threat's ball (the first listed, when the config lists threats)
    return ProbSettings.from_mapping({**config["probabilistic"], **(config.get("threats") or [{}])[0]})


def test_configured_tests_control_false_certification_at_the_boundary() -> None:
    """The default config's designs, at p exactly 1 - kappa, over 2*10^4 simulated inputs per kappa."""
    settings = _settings(ROOT / "config.yaml")
    inputs = 20_000
    bound = settings.alpha + slack(settings.alpha, inputs)
    rng = np.random.default_rng(5)
    for kappa in settings.kappas:
        seq, _ = _design_rates(settings.design(kappa), 1 - kappa, inputs, seed=int(kappa * 1e4))
        k = rng.binomial(settings.n_max, 1 - kappa, size=inputs)
        certifies = {int(v): fixed_test(int(v), settings.n_max, kappa, settings.alpha) == Outcome.ROBUST
                     for v in np.unique(k)}
        fixed = np.mean([certifies[int(v)] for v in k])
        assert seq <= bound and fixed <= bound, (kappa, seq, fixed)
    # the paper's procedure -- an exact test at the full level after every look (here 100 looks) -- does not
    naive = NaiveSequentialTest(settings.kappa, settings.alpha, settings.n_max, step=settings.n_max // 100)
    rate, _ = _design_rates(naive, 1 - settings.kappa, inputs, seed=7)
    assert rate > bound


def test_check_settings_rejects_a_cap_that_cannot_certify() -> None:
    base = {"eps": 0.3, "norm": "Linf", "kappa": 0.01, "kappa_sweep": [0.01], "alpha": 0.01, "growth": 2.0}
    check_settings(ProbSettings.from_mapping({**base, "n_max": 2000}))
    with pytest.raises(ValueError, match="needs n_max >= 459"):
        check_settings(ProbSettings.from_mapping({**base, "n_max": 400}))


# ------------------------------------------------------------------------- records, metrics, resumption


def test_counts_roundtrip() -> None:
    counts = {637: 637, 1274: 1270, 20: 3}
    assert decode_counts(encode_counts(counts)) == counts
    assert encode_counts(counts) == "20:3;637:637;1274:1270"


SETTINGS = ProbSettings(eps=0.1, norm="Linf", kappa=0.05, kappa_sweep=(0.02, 0.05, 0.1), alpha=0.01, n_max=800,
                        batch_size=128)


class _Threshold(torch.nn.Module):
    """Two classes: class 1 iff the mean pixel exceeds 0.5 (vicinity robustness set by the input's mean)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = 40.0 * (x.flatten(1).mean(1) - 0.5)
        return torch.stack([-s, s], dim=1)


def _inputs() -> tuple[torch.Tensor, torch.Tensor]:
    means = torch.tensor([0.9, 0.1, 0.505, 0.52, 0.5, 0.48, 0.7])
    x = means.view(-1, 1, 1, 1).expand(-1, 1, 2, 2).clone()
    y = torch.tensor([1, 0, 1, 1, 0, 1, 0])  # the last two are misclassified
    return x, y


def _pass(tmp_path: Path, name: str, tests: list[str], order: list[int], stop_after: int | None = None) -> pd.DataFrame:
    model, (x, y) = _Threshold(), _inputs()
    writer = ResumableCSV(tmp_path / name, RAW_COLUMNS)
    if stop_after is not None:  # killed after `stop_after` points, then resumed in another order
        certify_points(model, x, y, order[:stop_after], tests, SETTINGS, 4, writer)
        writer.close()
        writer = ResumableCSV(tmp_path / name, RAW_COLUMNS)
        assert len(writer.rows) == stop_after
        order = order[::-1]
    certify_points(model, x, y, order, tests, SETTINGS, 4, writer)
    writer.finalize({}, sort_key="index")
    return pd.read_csv(tmp_path / name)


@pytest.mark.parametrize("tests", [["fixed", "sequential"], ["sequential"]])
def test_sampling_pass_resumes_to_identical_records(tmp_path: Path, tests: list[str]) -> None:
    full = _pass(tmp_path, "full.csv", tests, list(range(7)))
    resumed = _pass(tmp_path, "part.csv", tests, list(range(7)), stop_after=3)
    cols = [c for c in RAW_COLUMNS if c != "seconds"]
    pd.testing.assert_frame_equal(full[cols], resumed[cols])
    assert full["reference"].tolist() == [1, 0, 1, 1, 0, 0, 1]
    for test in tests:
        d = decide_records(full, test, SETTINGS)
        assert d.loc[0, "outcome"] == "robust" and d.loc[1, "outcome"] == "robust"
        assert d.loc[4, "outcome"] == "not_robust"  # on the decision boundary: half the vicinity flips
        if test == "fixed":
            assert (d["samples"] == SETTINGS.n_max).all()
        else:
            assert d.loc[0, "samples"] == SETTINGS.design(SETTINGS.kappa).looks[0] < SETTINGS.n_max
        for kappa in SETTINGS.kappas:  # every kappa is replayable from the record
            assert len(decisions(d, test, kappa, SETTINGS)) == 7
    if tests == ["sequential"]:  # stops early; with the fixed test every point gets n_max samples
        assert full.loc[0, "samples_drawn"] < SETTINGS.n_max
    else:
        assert (full["samples_drawn"] == SETTINGS.n_max).all()


def test_sequential_decisions_do_not_depend_on_the_fixed_test_sharing_the_pass(tmp_path: Path) -> None:
    both = _pass(tmp_path, "both.csv", ["fixed", "sequential"], list(range(7)))
    alone = _pass(tmp_path, "alone.csv", ["sequential"], list(range(7)))
    for kappa in SETTINGS.kappas:
        pd.testing.assert_frame_equal(decisions(both, "sequential", kappa, SETTINGS),
                                      decisions(alone, "sequential", kappa, SETTINGS))


def test_metrics_and_summary_rows() -> None:
    settings = ProbSettings(eps=0.3, norm="Linf", kappa=0.01, kappa_sweep=(0.01,), alpha=0.01, n_max=1000)
    frame = pd.DataFrame({
        "index": [0, 1, 2, 3], "label": [1, 2, 3, 4], "reference": [1, 2, 0, 4],
        "counts": ["1000:1000", "1000:1000", "1000:1000", "1000:500"],
    })
    m = metrics(frame, "fixed", 0.01, settings)
    assert m["certified_rate"] == 0.75 and m["certified_accuracy"] == 0.5  # point 2 certified but wrong
    assert m["not_robust_rate"] == 0.25 and m["undecided_rate"] == 0.0 and m["mean_samples"] == 1000
    pgd = pd.DataFrame({"index": range(4), "label": [1, 2, 3, 4], "clean_prediction": [1, 2, 0, 4],
                        "correct": [1, 0, 0, 1]})
    assert defense_success_rate(pgd) == (pytest.approx(2 / 3), 3)
    rows = summary_rows("digits", "variance", "fixed", frame, settings, pgd, Threat("Linf", 0.3))
    by_metric = {r["metric"]: r for r in rows}
    assert by_metric["certified_accuracy"]["evaluation"] == "certify-prob-fixed"
    assert by_metric["certified_accuracy"]["n"] == 4 and by_metric["defense_success_rate"]["n"] == 3
    assert by_metric["kappa"]["value"] == 0.01


def test_merge_command_joins_shards(tmp_path: Path) -> None:
    from tradeoff.commands.merge import merge_probabilistic

    settings = {"eps": 0.3, "norm": "Linf", "kappa": 0.01, "kappa_sweep": [0.01, 0.1], "alpha": 0.01,
                "n_max": 1000, "growth": 2.0, "clamp": True, "batch_size": 100}
    common = {"dataset": "digits", "classifier": "standard", "tests": ["fixed", "sequential"], "settings": settings,
              "seed": 0, "n_points": 4, "shards": 2, "classifier_sha256": "abc", "config": {"probabilistic": settings}}
    looks = sorted({n for k in (0.01, 0.1) for n in SequentialTest(k, 0.01, 1000).looks})
    for shard in (0, 1):
        rows = [{"index": i, "label": 1, "reference": 1, "samples_drawn": 1000,
                 "counts": ";".join(f"{n}:{n}" for n in looks), "seconds": 0.1} for i in (shard, shard + 2)]
        write_records(tmp_path / f"s{shard}.csv", rows, {**common, "shard": shard}, columns=RAW_COLUMNS)
    write_records(tmp_path / "pgd.csv", [{"index": i, "label": 1, "clean_prediction": 1, "prediction": 1,
                                          "correct": 1, "perturbation": 0.3} for i in range(6)],
                  {"norm": "Linf", "eps": 0.3, "classifier_sha256": "abc"})
    item = {"shards": [str(tmp_path / "s1.csv"), str(tmp_path / "s0.csv")], "pgd": str(tmp_path / "pgd.csv"),
            "out": {"fixed": str(tmp_path / "f.csv"), "sequential": str(tmp_path / "q.csv")}}
    merge_probabilistic(argparse.Namespace(plan=[item]))
    for name, samples in (("f.csv", 1000), ("q.csv", SequentialTest(0.01, 0.01, 1000).looks[0])):
        frame, meta = read_records(tmp_path / name)
        assert frame["index"].tolist() == [0, 1, 2, 3] and (frame["samples"] == samples).all()
        rows = {r["metric"]: r for r in meta["summary_rows"]}
        assert rows["certified_accuracy"]["value"] == 1.0 and rows["defense_success_rate"]["n"] == 4
    item["shards"] = item["shards"][:1]  # a missing shard is an error, not a silent partial result
    with pytest.raises(Exception, match="cover"):
        merge_probabilistic(argparse.Namespace(plan=[item]))


@pytest.mark.parametrize("path, value, where", [
    (("probabilistic", "n_max"), 300, "config error at probabilistic.n_max: n_max=300 cannot certify"),
    (("probabilistic", "kappa"), -0.01, "config error at probabilistic.kappa"),
    (("probabilistic", "tests"), ["naive"], "config error at probabilistic.tests.0"),
    (("models", "variance", "params", "n"), 1, "config error at models.variance.params.n"),
    (("models", "variance", "params", "loss"), "mse", "config error at models.variance.params.loss"),
])
def test_config_errors_are_one_clear_line(path: tuple[str, ...], value: object, where: str) -> None:
    from tradeoff.config import ConfigError, check_config

    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    check_config(config, ROOT / "workflow" / "schemas" / "config.schema.yaml")
    node = config
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(ConfigError) as info:
        check_config(config, ROOT / "workflow" / "schemas" / "config.schema.yaml")
    assert str(info.value).startswith(where) and "\n" not in str(info.value)
