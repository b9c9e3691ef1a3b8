"""End to end: the smoke preset through Snakemake as a subprocess, then reruns, resumption, determinism."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from workflow_helpers import copy_workflow, env, planned_outputs, snakemake

pytestmark = [pytest.mark.e2e, pytest.mark.slow]  # every test here reads a Snakemake run
SMOKE = ["--configfile", "presets/smoke.yaml"]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    work = copy_workflow(tmp_path_factory.mktemp("smoke"))
    snakemake(work, *SMOKE)
    return work


@pytest.mark.slow
def test_summary_has_the_contract_ids(smoke_run):
    summary = pd.read_csv(smoke_run / "results" / "summary.csv")
    # the ids other tools read, then the training seed (one seed: 0)
    assert list(summary.columns) == ["dataset", "classifier", "evaluation", "norm", "eps", "metric", "value", "n",
                                     "seed"]
    assert set(summary.seed) == {0}
    preset = yaml.safe_load((smoke_run / "presets" / "smoke.yaml").read_text())
    n_test = preset["data"]["digits"]["n_test"]
    base = summary[(summary.dataset == "digits") & summary.classifier.isin(["standard", "pgd_at", "trades"])
                   & (summary.metric == "accuracy") & (summary.evaluation != "eps-sweep")]
    assert {(c, e) for c, e in zip(base.classifier, base.evaluation, strict=True)} >= {
        (c, e) for c in ("standard", "pgd_at", "trades") for e in ("clean", "pgd", "margin", "autoattack", "worst")}
    assert set(base.n) == {n_test}
    assert base.value.between(0, 1).all()
    # every robust method at both budgets of the config, told apart by the norm and eps columns
    assert set(base[base.classifier == "pgd_at"].eps) == {0.1, 0.3}
    for (c, eps), group in base.groupby(["classifier", "eps"]):
        acc = group.set_index("evaluation").value
        assert not acc.index.duplicated().any(), (c, eps)
        # attacks never raise accuracy above clean accuracy; the worst case is below every attack
        assert max(acc["pgd"], acc["margin"], acc["autoattack"]) <= acc["clean"], (c, eps)
        assert acc["worst"] <= min(acc["pgd"], acc["margin"], acc["autoattack"]), (c, eps)


@pytest.mark.slow
def test_figures_and_provenance(smoke_run):
    for threat in ("linf-0.1", "linf-0.3"):
        assert (smoke_run / "results" / "figures" / threat / "base_tradeoff.png").stat().st_size > 1000
    assert (smoke_run / "results" / "figures" / "threats.png").stat().st_size > 1000
    import json

    record = smoke_run / "results" / "digits" / "linf-0.3" / "eval" / "trades" / "autoattack.json"
    meta = json.loads(record.read_text())
    assert {"config", "seed", "versions", "git_commit", "flags"} <= set(meta)
    assert meta["versions"]["torch"] and meta["n_rows"] > 0


@pytest.mark.slow
def test_no_job_uses_more_memory_or_time_than_it_declares(smoke_run, tmp_path):
    # every job's benchmark record (the profile writes the extended format) against its rule's declaration
    from tradeoff.cli import main
    from tradeoff.io import read_records

    records = list((smoke_run / "results" / "benchmarks").rglob("*.tsv"))
    assert main(["resources", "--benchmarks", str(smoke_run / "results" / "benchmarks"),
                 "--out", str(tmp_path / "jobs.csv")]) == 0
    jobs, _ = read_records(tmp_path / "jobs.csv")
    assert len(jobs) == len(records) and {"train", "train_shared", "summary"} <= set(jobs["rule"])
    assert (jobs["max_rss_mb"] > 0).sum() >= len(jobs) // 2 and (jobs["seconds"] > 0).all()  # measured
    assert (jobs["max_rss_mb"] <= jobs["mem_mb"]).all() and (jobs["seconds"] <= 60 * jobs["runtime_min"]).all()


@pytest.mark.slow
def test_nothing_reruns_when_nothing_changed(smoke_run):
    assert planned_outputs(smoke_run, *SMOKE) == {}


def _override(work: Path, name: str, text: str) -> list[str]:
    (work / name).write_text(text)
    return [*SMOKE, name]


@pytest.mark.slow
def test_changing_a_training_hyperparameter_reruns_that_model_and_its_dependants(smoke_run):
    plan = planned_outputs(smoke_run, *_override(smoke_run, "o1.yaml", (
        "models:\n  pgd_at:\n    objective: pgd_at\n    params: {steps: 3, step_rel: 0.5}\n")))
    outputs = [o for outs in plan.values() for o in outs]
    assert {"results/digits/linf-0.1/models/pgd_at.json", "results/digits/linf-0.3/models/pgd_at.json"} <= set(outputs)
    assert not any("models/standard." in o or "models/trades." in o for o in outputs)
    assert "results/digits/linf-0.3/eval/pgd_at/autoattack.csv" in outputs
    assert not any("/eval/standard/" in o for o in outputs)


def _outputs(plan: dict[str, list[str]]) -> list[str]:
    return [o for outs in plan.values() for o in outs]


def _only(outputs: list[str], allowed: tuple[str, ...]) -> list[str]:
    """Outputs not explained by the change (beyond the summary, sanity checks, claims, tables and figures that read
    everything)."""
    common = ("results/summary.csv", "results/sanity.csv", "results/claims.", "results/figures/", "results/tables/")
    return [o for o in outputs if not o.startswith(common) and not any(a in o for a in allowed)]


@pytest.mark.slow
def test_changing_the_alpha_list_reruns_only_mixing(smoke_run):
    plan = planned_outputs(smoke_run, *_override(smoke_run, "o2.yaml", "mixing:\n  alphas: [0.6]\n"))
    outputs = _outputs(plan)
    assert any("mix-prob-0.6" in o for o in outputs)
    assert _only(outputs, ("mix-prob-0.6", "mix-logit-0.6", "mixing")) == []


@pytest.mark.slow
def test_changing_sigma_reruns_only_certification(smoke_run):
    plan = planned_outputs(smoke_run, *_override(smoke_run, "o3.yaml", "certify:\n  sigmas: [0.5]\n"))
    outputs = _outputs(plan)
    assert any("gauss_aug-0.5" in o for o in outputs)
    assert _only(outputs, ("gauss_aug-0.5", "/certify/")) == []


THREATS = "threats:\n  - {norm: Linf, eps: 0.1}\n  - {norm: Linf, eps: 0.3}\n"


@pytest.mark.slow
def test_adding_a_threat_plans_only_its_jobs_and_removing_it_reruns_nothing(smoke_run, tmp_path):
    work = copy_workflow(tmp_path / "w")
    shutil.copytree(smoke_run / "results", work / "results")
    shutil.copytree(smoke_run / ".snakemake", work / ".snakemake", dirs_exist_ok=True)
    added = _override(work, "t1.yaml", THREATS + "  - {norm: Linf, eps: 0.2}\n")
    outputs = _outputs(planned_outputs(work, *added))
    assert "results/digits/linf-0.2/models/pgd_at.json" in outputs
    assert "results/digits/linf-0.2/eval/standard/autoattack.csv" in outputs
    # nothing at the other budgets, no threat-free model, no certificate: only the new budget and what reads it
    assert _only(outputs, ("/linf-0.2/",)) == []
    assert not any("/models/standard." in o for o in outputs)
    snakemake(work, *added)
    # back to the two budgets: every job of theirs is done, only the tables and figures that read the summary
    assert _only(_outputs(planned_outputs(work, *SMOKE)), ()) == []


@pytest.mark.slow
def test_adding_a_seed_plans_only_its_jobs(smoke_run):
    outputs = _outputs(planned_outputs(smoke_run, *_override(smoke_run, "s1.yaml", "seeds: [0, 1]\n")))
    assert "results/digits/seed-1/models/standard.pt" in outputs
    assert "results/digits/seed-1/linf-0.3/eval/pgd_at/worst.csv" in outputs
    assert "results/digits/seed-1/linf-0.1/eval/era-composite/adaptive.csv" in outputs
    assert "results/tsipras/seed-1/models/standard.pt" in outputs
    # no data split, nothing of seed 0: only seed 1's jobs and the tables that read every seed
    assert _only(outputs, ("/seed-1/",)) == []


@pytest.mark.slow
def test_changing_one_stages_threats_touches_only_that_stage(smoke_run):
    plan = planned_outputs(smoke_run, *_override(smoke_run, "t4.yaml", "mixing: {threats: null}\n"))
    outputs = _outputs(plan)
    assert "results/digits/linf-0.1/models/mixnet.pt" in outputs
    assert _only(outputs, ("/linf-0.1/models/mix", "/linf-0.1/eval/mix", "/linf-0.1/mixing/",
                             "/linf-0.1/eval/pgd_at/confidence")) == []


@pytest.mark.slow
def test_killed_training_resumes_and_matches_an_uninterrupted_run(tmp_path):
    # The run is interrupted after epoch 3 of 6 by the train command's own stop flag (the state a kill right after
    # that epoch's checkpoint leaves: a checkpoint, no model), then rerun without it.
    tradeoff = [sys.executable, "-m", "tradeoff"]
    data = tmp_path / "data.pt"
    subprocess.run([*tradeoff, "data", "--dataset", "digits", "--params", '{"n_calib": 60, "n_test": 40}',
                    "--out", str(data)], check=True, env=env(), capture_output=True, timeout=600)
    common = ["train", "--no-progress", "--data", str(data), "--name", "m", "--arch", "small_cnn",
              "--objective", "pgd_at", "--objective-params", '{"steps": 3}', "--threat",
              '{"norm": "Linf", "eps": 0.3}', "--train-params", '{"epochs": 6, "batch_size": 64}', "--seed", "3"]
    subprocess.run([*tradeoff, *common, "--checkpoint", str(tmp_path / "a.ckpt"), "--out", str(tmp_path / "a.json")],
                   check=True, env=env(), capture_output=True, timeout=600)
    ckpt = tmp_path / "b.ckpt"
    b = ["--checkpoint", str(ckpt), "--out", str(tmp_path / "b.json")]
    subprocess.run([*tradeoff, *common, *b, "--stop-after-epoch", "2"], check=True, env=env(), capture_output=True,
                   timeout=600)
    assert ckpt.exists() and not (tmp_path / "b.json").exists(), "the run must stop mid-training"
    resumed = subprocess.run([*tradeoff, *common, *b], check=True, env=env(), capture_output=True, text=True,
                             timeout=600)
    assert "from epoch 3" in resumed.stderr, resumed.stderr[-2000:]  # epochs 0-2 were not trained again
    import json

    a, b = (json.loads((tmp_path / f"{n}.json").read_text()) for n in "ab")
    assert a["sha256"] == b["sha256"]  # bit-identical weights
    assert [h["loss"] for h in a["history"]] == [h["loss"] for h in b["history"]]


def _stop_and_kill_shim(directory: Path, points: int) -> Path:
    """A ``tradeoff`` executable that runs ``certify`` with ``--stop-after points`` and then kills its whole
    process group (Snakemake included) with SIGKILL; every other subcommand runs unchanged."""
    real = Path(sys.executable).parent / "tradeoff"
    directory.mkdir(parents=True, exist_ok=True)
    shim = directory / "tradeoff"
    shim.write_text(f"""#!{sys.executable}
import os, signal, subprocess, sys
real = {str(real)!r}
if sys.argv[1:2] == ["certify"]:
    subprocess.run([real, *sys.argv[1:], "--stop-after", "{points}"], check=True)
    os.killpg(os.getpgrp(), signal.SIGKILL)
os.execv(real, [real, *sys.argv[1:]])
""")
    shim.chmod(0o755)
    return directory


@pytest.mark.slow
def test_killed_certification_shard_resumes_under_snakemake(tmp_path):
    # Snakemake (its whole process group) is killed with SIGKILL while a certification shard runs, exactly after the
    # shard's second point: a `tradeoff` shim on PATH runs the shard with its stop flag and then kills the group.
    # After `--unlock` the rerun resumes from the shard's progress file and gives the records of a fresh run.
    work = copy_workflow(tmp_path / "w")
    args = _override(work, "one.yaml", "certify:\n  shards: 1\n")
    shard = "results/digits/certify/gauss_aug-0.25/shards/0-of-1.csv"
    partial = work / (shard + ".partial")
    killing = env()
    killing["PATH"] = str(_stop_and_kill_shim(tmp_path / "shim", 2)) + os.pathsep + killing["PATH"]
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2", shard, *args]  # target first: --configfile takes many
    proc = subprocess.Popen(cmd, cwd=work, env=killing, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    assert proc.wait(timeout=1500) == -signal.SIGKILL, "Snakemake must be killed mid-shard"
    assert not (work / shard).exists()
    assert len(partial.read_text().splitlines()) == 1 + 2  # header + the two points certified before the kill
    snakemake(work, *args, "--unlock")
    snakemake(work, shard, *args)
    log = (work / "logs/digits/certify/gauss_aug-0.25/shard-0-of-1.log").read_text()
    assert "resuming: 2 of 8 points already certified" in log, log[-2000:]
    first = pd.read_csv(work / shard)
    snakemake(work, shard, "--forcerun", "certify_shard", *args)  # from scratch: no progress file is left
    assert "resuming" not in (work / "logs/digits/certify/gauss_aug-0.25/shard-0-of-1.log").read_text()
    fresh = pd.read_csv(work / shard)
    assert len(fresh) == 8 and first.drop(columns="seconds").equals(fresh.drop(columns="seconds"))


@pytest.mark.slow
def test_corrupt_record_is_reported_by_name(smoke_run, tmp_path):
    work = copy_workflow(tmp_path / "w")
    shutil.copytree(smoke_run / "results", work / "results")
    shutil.copytree(smoke_run / ".snakemake", work / ".snakemake", dirs_exist_ok=True)
    record = work / "results" / "digits" / "linf-0.3" / "eval" / "standard" / "clean.csv"
    record.write_text(record.read_text()[:-30])
    proc = subprocess.run([sys.executable, "-m", "tradeoff", "summary", "--out", str(tmp_path / "s.csv"),
                           str(record)], env=env(), capture_output=True, text=True)
    assert proc.returncode != 0
    assert "clean.csv" in proc.stderr and "checksum" in proc.stderr


@pytest.mark.slow
def test_same_seed_gives_identical_summary(smoke_run, tmp_path):
    second = copy_workflow(tmp_path / "again")
    snakemake(second, *SMOKE)
    first_summary = (smoke_run / "results" / "summary.csv").read_bytes()
    assert (second / "results" / "summary.csv").read_bytes() == first_summary


def test_claims_verdicts_follow_their_intervals(smoke_run):
    from tradeoff.claims import VERDICTS
    from tradeoff.claims.table import inconsistent

    rows = pd.read_csv(smoke_run / "results" / "claims.csv", keep_default_na=False).to_dict("records")
    assert rows and {r["verdict"] for r in rows} <= set(VERDICTS)
    assert inconsistent([{**r, "low": float(r["low"] or "nan"), "high": float(r["high"] or "nan")} for r in rows]) == []
