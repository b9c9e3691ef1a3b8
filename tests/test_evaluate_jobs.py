"""The evaluation job: every attack of a classifier in one job, batch by batch; shards and resumes give the
records of one uninterrupted unsharded job; AutoAttack attacks only what the earlier attacks left standing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tradeoff.cli import main
from tradeoff.io import read_records

THREAT = json.dumps({"norm": "Linf", "eps": 0.15})
RT = ["--threads", "1", "--device", "cpu", "--no-progress", "--seed", "0"]
ATTACKS = ["clean", "pgd", "margin", "autoattack"]
PARAMS = {
    "pgd": {"steps": 5, "step_rel": 0.25, "restarts": 1, "loss": "ce"},
    "margin": {"steps": 5, "step_rel": 0.25, "restarts": 2, "loss": "margin", "targets": 2, "target_restarts": 1},
    "autoattack": {"version": "custom", "attacks": ["apgd-ce", "apgd-t", "square"], "n_iter": 10,
                   "n_target_classes": 3, "square_queries": 50},
    "eps-sweep": {"steps": 5, "step_rel": 0.25, "restarts": 1, "loss": "margin", "targets": 0,
                  "eps_factors": [0.5, 1.0, 2.0]},
}


def _run(*argv: str) -> None:
    assert main(list(argv)) == 0


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("evaljobs")
    _run("data", "--dataset", "digits", "--params", json.dumps({"n_calib": 60, "n_test": 90}),
         "--seed", "0", "--out", str(d / "data.pt"))
    _run("train", *RT, "--data", str(d / "data.pt"), "--name", "pgd_at", "--arch", "small_cnn", "--arch-options",
         json.dumps({"width": 8}), "--objective", "pgd_at", "--objective-params", json.dumps({"steps": 3}),
         "--threat", THREAT, "--train-params", json.dumps({"epochs": 3, "batch_size": 64, "lr": 0.003}),
         "--checkpoint", str(d / "ck.pt"), "--out", str(d / "pgd_at.json"))
    return d


def _evaluate(d: Path, out: Path, attacks=ATTACKS, *extra: str) -> None:
    _run("attacks", *RT, "--data", str(d / "data.pt"), "--classifier", str(d / "pgd_at.json"), "--name",
         "pgd_at", "--out-dir", str(out), "--attacks", *attacks, "--threat", THREAT, "--params",
         json.dumps({a: PARAMS.get(a, {}) for a in attacks}), "--batch-size", "20", *extra)


def _records(out: Path, attack: str):
    frame, meta = read_records(out / f"{attack}.csv")
    return frame, meta


@pytest.fixture(scope="module")
def unsharded(model) -> Path:
    out = model / "one"
    _evaluate(model, out)
    _evaluate(model, out, ["eps-sweep"])
    return out


@pytest.mark.slow
def test_each_evaluation_is_the_same_as_when_it_runs_alone(model, unsharded):
    # per-batch seeds: PGD and the margin attack give the same records whether other attacks share the job
    alone = model / "alone"
    for attack in ("clean", "pgd", "margin"):
        _evaluate(model, alone, [attack])
        a, _ = _records(alone, attack)
        b, _ = _records(unsharded, attack)
        assert a.equals(b), attack


@pytest.mark.slow
def test_autoattack_runs_on_survivors_and_is_never_above_the_earlier_attacks(model, unsharded):
    clean, _ = _records(unsharded, "clean")
    pgd, _ = _records(unsharded, "pgd")
    margin, _ = _records(unsharded, "margin")
    aa, meta = _records(unsharded, "autoattack")
    standing = (pgd.correct == 1) & (margin.correct == 1)
    assert meta["attacked"] == int(standing.sum())
    assert (aa.correct <= pgd.correct).all() and (aa.correct <= margin.correct).all()
    assert (aa.correct <= clean.correct).all()
    # a point broken before AutoAttack keeps the earlier break's prediction and perturbation
    broken = ~standing & (clean.correct == 1)
    assert (aa.prediction[broken] != aa.label[broken]).all()
    assert (aa.perturbation <= 0.15 + 1e-6).all()
    # its per-attack accuracies count the whole test set and end at its own accuracy
    by_attack = meta["accuracy_by_attack"]
    assert list(by_attack) == ["apgd-ce", "apgd-t", "square"]
    values = list(by_attack.values())
    assert values == sorted(values, reverse=True)
    assert values[-1] == pytest.approx(aa.correct.mean())
    assert meta["run_on"] == "points pgd and margin left standing"
    rows = {r["metric"]: r["value"] for r in meta["summary_rows"]}
    assert rows["accuracy"] == pytest.approx(aa.correct.mean())


@pytest.mark.slow
def test_three_shards_merge_into_the_unsharded_records(model, unsharded):
    sharded = model / "three"
    for attacks in (ATTACKS, ["eps-sweep"]):
        group = "+".join(attacks)
        for k in range(3):
            _evaluate(model, sharded, attacks, "--shard", str(k), "--shards", "3")
        shards = [str(sharded / "shards" / f"{group}-{k}-of-3.csv") for k in (2, 0, 1)]  # any order
        _run("merge", "attacks", "--name", "pgd_at", "--attacks", *attacks, "--threat", THREAT, "--params",
             json.dumps({a: PARAMS.get(a, {}) for a in attacks}), "--out-dir", str(sharded), *shards)
    for attack in [*ATTACKS, "eps-sweep"]:
        a, meta_a = _records(sharded, attack)
        b, meta_b = _records(unsharded, attack)
        assert a.equals(b), attack
        assert meta_a["summary_rows"] == meta_b["summary_rows"], attack
        for key in ("accuracy_by_attack", "attacked", "broken_by", "eps_grid"):
            assert meta_a.get(key) == meta_b.get(key), (attack, key)


@pytest.mark.slow
def test_merge_refuses_an_incomplete_or_foreign_set_of_shards(model, unsharded):
    sharded = model / "three"  # made by the test above when run in order; make it if run alone
    group = "+".join(ATTACKS)
    if not (sharded / "shards" / f"{group}-2-of-3.csv").exists():
        for k in range(3):
            _evaluate(model, sharded, ATTACKS, "--shard", str(k), "--shards", "3")
    args = ["merge", "attacks", "--name", "pgd_at", "--attacks", *ATTACKS, "--threat", THREAT, "--out-dir",
            str(model / "bad")]
    assert main([*args, *(str(sharded / "shards" / f"{group}-{k}-of-3.csv") for k in (0, 1))]) == 3
    assert not (model / "bad" / "autoattack.csv").exists()


@pytest.mark.slow
def test_a_stopped_job_resumes_to_the_same_records(model, unsharded):
    out = model / "resumed"
    _evaluate(model, out, ATTACKS, "--stop-after", "2")
    progress = out / f"progress-{'+'.join(ATTACKS)}.csv.partial"
    assert progress.exists() and not (out / "pgd.csv").exists()
    # a batch cut off mid-write (no closing row) is dropped and redone, never recorded twice
    lines = progress.read_text().splitlines(keepends=True)
    assert lines[1].startswith("0,clean,")
    progress.write_text("".join(lines) + "40," + lines[1][2:])  # a row of the third batch, which never closed
    _evaluate(model, out)
    assert not progress.exists()
    for attack in ATTACKS:
        a, _ = _records(out, attack)
        b, _ = _records(unsharded, attack)
        assert a.equals(b), attack


@pytest.mark.slow
def test_progress_of_other_parameters_is_set_aside_not_merged(model, unsharded, capsys):
    out = model / "changed"
    _evaluate(model, out, ATTACKS, "--stop-after", "1")
    progress = out / f"progress-{'+'.join(ATTACKS)}.csv.partial"
    assert progress.exists()
    capsys.readouterr()
    _run("attacks", *RT[:-2], "--seed", "1", "--data", str(model / "data.pt"), "--classifier",
         str(model / "pgd_at.json"), "--name", "pgd_at", "--out-dir", str(out), "--attacks", *ATTACKS,
         "--threat", THREAT, "--params", json.dumps({a: PARAMS.get(a, {}) for a in ATTACKS}),
         "--batch-size", "20")
    assert progress.with_name(progress.name + ".foreign").exists()
    assert "set aside" in capsys.readouterr().err
    fresh = model / "fresh-seed1"
    _run("attacks", *RT[:-2], "--seed", "1", "--data", str(model / "data.pt"), "--classifier",
         str(model / "pgd_at.json"), "--name", "pgd_at", "--out-dir", str(fresh), "--attacks", *ATTACKS,
         "--threat", THREAT, "--params", json.dumps({a: PARAMS.get(a, {}) for a in ATTACKS}),
         "--batch-size", "20")
    for attack in ATTACKS:
        a, _ = _records(out, attack)
        b, _ = _records(fresh, attack)
        assert a.equals(b), attack


@pytest.mark.slow
def test_robustness_of_correct_points_is_decided_by_the_label_attacks(model, unsharded):
    # a correctly classified point's prediction is its label: "robust" is the event the evaluation's suite
    # tests, so with --combine-decides-correct only the misclassified points are attacked again
    combine = [str(unsharded / f"{a}.csv") for a in ("pgd", "margin", "autoattack")]
    robustness = {"steps": 5, "step_rel": 0.25, "restarts": 1, "loss": "margin", "targets": 1, "apgd": [],
                  "apgd_iter": 5}
    for flag, out in (("--combine-decides-correct", "decided.csv"), (None, "attacked.csv")):
        _run("era-robustness", *RT, "--data", str(model / "data.pt"), "--classifier", str(model / "pgd_at.json"),
             "--name", "pgd_at", "--threat", THREAT, "--params", json.dumps(robustness), "--combine", *combine,
             *([flag] if flag else []), "--batch-size", "20", "--out", str(model / out))
    decided, _ = read_records(model / "decided.csv")
    attacked, _ = read_records(model / "attacked.csv")
    aa, _ = _records(unsharded, "autoattack")
    correct = decided.correct == 1
    # correct points: robust exactly when every label attack (AutoAttack's records: the cumulative worst) missed
    assert (decided.robust[correct] == aa.correct[correct]).all()
    assert (decided.robust_accurate == aa.correct).all()
    # misclassified points were attacked as before; attacking the correct ones again can only find more flips
    assert (decided.robust[~correct] == attacked.robust[~correct]).all()
    assert (attacked.robust_accurate <= decided.robust_accurate).all()
