"""A real SLURM run: the smoke preset's first stages through profiles/slurm, with every heavy rule asking
for a GPU (scheduled on a fake GPU where the node has none; the code falls back to the CPU). Skipped
where no SLURM controller answers."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from workflow_helpers import copy_workflow, snakemake


def slurm_available() -> bool:
    if not shutil.which("sbatch") or not shutil.which("scontrol"):
        return False
    try:
        return subprocess.run(["scontrol", "ping"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def node_has_gpu() -> bool:
    out = subprocess.run(["sinfo", "-h", "-o", "%G"], capture_output=True, text=True, timeout=10).stdout
    return "gpu" in out


pytestmark = [pytest.mark.slurm,
              pytest.mark.skipif(not slurm_available(), reason="no SLURM controller reachable")]


def slurm_jobs() -> list[dict[str, str]]:
    """SLURM's own records of recent jobs (kept MinJobAge seconds after they end)."""
    out = subprocess.run(["scontrol", "show", "job", "-o"], capture_output=True, text=True, timeout=30).stdout
    jobs = []
    for line in out.splitlines():
        fields = {}
        for token in line.split():
            if "=" in token:
                k, v = token.split("=", 1)
                fields[k] = v
        jobs.append(fields)
    return jobs


@pytest.mark.slow
@pytest.mark.skipif(slurm_available() and not node_has_gpu(), reason="the SLURM node advertises no GPU")
def test_pipeline_runs_through_slurm_with_a_gpu_rule(tmp_path, monkeypatch):
    work = copy_workflow(tmp_path / "cluster")
    (work / "gpu.yaml").write_text("resources: {gpu: 1, threads: 1, mem_mb: 1000, runtime: 15}\n")
    monkeypatch.setenv("TRADEOFF_ALLOW_CPU_FALLBACK", "1")
    targets = ["results/env/digits.json", "results/digits/linf-0.3/eval/standard/clean.csv"]
    snakemake(work, "--profile", "profiles/slurm", "--configfile", "presets/smoke.yaml", "gpu.yaml", "--",
              *targets, timeout=1200)
    env_report = json.loads((work / "results" / "env" / "digits.json").read_text())
    assert env_report["slurm_job_id"] and env_report["gpus_requested"] == 1
    mine = [j for j in slurm_jobs() if j.get("WorkDir") == str(work)]
    rules = {j.get("Comment", "").split("_wildcards")[0] for j in mine if j.get("JobState") == "COMPLETED"}
    assert {"rule_check_env", "rule_train_shared", "rule_evaluate"} <= rules, mine  # clean.csv with the attacks
    for job in mine:
        if job.get("JobState") == "COMPLETED":
            assert job.get("TresPerJob") == "gres:gpu:1", job  # the GPU was requested from SLURM
    # the data rule is a localrule: it never went to SLURM
    assert not any("rule_data" in j.get("Comment", "") for j in mine)
