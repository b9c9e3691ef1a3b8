"""Preemption on a real SLURM cluster (profiles/slurm): a running training job and a running attack shard are
requeued mid-way (`scontrol requeue`), and the training job then overruns its time limit; each resumes from its
progress, the time-limited job is retried with more time, and the final weights and shard records equal an
uninterrupted run's byte for byte. Skipped where no SLURM controller answers. The fault table in
docs/faults.md lists this test."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_slurm import slurm_available, slurm_jobs
from workflow_helpers import copy_workflow, env, snakemake

pytestmark = [pytest.mark.slurm, pytest.mark.slow,
              pytest.mark.skipif(not slurm_available(), reason="no SLURM controller reachable")]

# Heavy jobs get 1 minute on their first attempt, 2 on the second (the profile's `runtime × attempt`). The
# standard model trains long enough to resist ε = 0.1, so that the shard's PGD runs all its steps (about 2 s a
# batch of 4 points, 5 batches a shard).
CONFIG = """\
resources: {gpu: 0, threads: 1, mem_mb: 2000, runtime: 1}
models:
  standard: {train: {epochs: 15}}
  pgd_at: {params: {steps: 10}, train: {epochs: 8}}
attacks: {shards: 2, batch_size: 4, pgd: {steps: 1000}}
"""
WEIGHTS = "results/digits/linf-0.1/models/pgd_at.pt"
CHECKPOINT = "results/digits/linf-0.1/checkpoints/pgd_at.pt"
TRAIN_LOG = "logs/digits/linf-0.1/train/pgd_at.log"
SHARD = "results/digits/linf-0.1/eval/standard/shards/clean+pgd+margin+autoattack-0-of-2.csv"
SHARD_LOG = "logs/digits/linf-0.1/eval/standard/clean+pgd+margin+autoattack-0-of-2.log"
ARGS = ["--configfile", "presets/smoke.yaml", "faults.yaml", "--", WEIGHTS, SHARD]


def _workflow(path: Path) -> Path:
    work = copy_workflow(path)
    (work / "faults.yaml").write_text(CONFIG)
    return work


def _requeue(job_id: str) -> None:
    """Preempt a running job as SLURM does for a higher-priority one: kill and queue it again. SLURM holds a
    requeued job back for two minutes; the test lets it start at once (once the job is pending again: an
    earlier release is overwritten by the requeue's hold)."""
    subprocess.run(["scontrol", "requeue", job_id], check=True, timeout=30)
    pending = False
    for _ in range(300):
        job = next((j for j in slurm_jobs() if j.get("JobId") == job_id), {})
        if job.get("JobState") == "PENDING":
            pending = True
            if job.get("Reason") == "BeginTime":
                subprocess.run(["scontrol", "update", f"JobId={job_id}", "StartTime=now"], check=True, timeout=30)
        elif pending and job.get("JobState") != "PENDING":
            return
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not start again after its requeue")


def _pause(job_id: str) -> None:
    """Stall a running job (as a hung file system would) so that it runs past its time limit: SIGSTOP to every
    process of the job; SLURM kills them at the limit."""
    out = subprocess.run(["scontrol", "listpids", job_id], capture_output=True, text=True, timeout=30).stdout
    for pid in [int(line.split()[0]) for line in out.splitlines()[1:] if line.split()[0].isdigit()]:
        if pid > 1:
            os.kill(pid, signal.SIGSTOP)


def _text(path: Path) -> str:
    """A log's text so far ("" while a job that is starting again has not recreated it)."""
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


def _closed_batches(partial: Path) -> int:
    """Finished batches in an attack shard's progress file (each ends with a row whose attack is empty)."""
    return len(re.findall(r"^\d+,,", _text(partial), re.M))


def _rule_jobs(work: Path, rule: str) -> list[dict[str, str]]:
    return [j for j in slurm_jobs() if j.get("WorkDir") == str(work) and j.get("Comment", "").startswith(
        f"rule_{rule}_wildcards")]


def test_requeued_and_timed_out_jobs_resume_to_the_records_of_an_uninterrupted_run(tmp_path):
    reference = _workflow(tmp_path / "reference")
    snakemake(reference, *ARGS, timeout=900)

    work = _workflow(tmp_path / "cluster")
    cmd = [sys.executable, "-m", "snakemake", "--profile", "profiles/slurm", *ARGS]
    run = subprocess.Popen(cmd, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env())
    events: dict[str, float] = {}
    partial = work / (SHARD + ".partial")
    deadline = time.monotonic() + 900
    try:
        while run.poll() is None and time.monotonic() < deadline:
            time.sleep(0.3)
            for job in _rule_jobs(work, "train"):
                if job.get("JobState") != "RUNNING":
                    continue
                if "train requeued" not in events and (work / CHECKPOINT).exists():
                    _requeue(job["JobId"])
                    events["train requeued"] = time.monotonic()
                elif ("train paused" not in events and job.get("Restarts") == "1"
                      and re.search(r"resuming .*\n(.*\n)*.*epoch \d+:", _text(work / TRAIN_LOG))):
                    _pause(job["JobId"])  # after it resumed and finished one more epoch
                    events["train paused"] = time.monotonic()
            for job in _rule_jobs(work, "attacks_shard"):
                if (job.get("JobState") == "RUNNING" and job["Comment"].endswith("_0_2")
                        and "shard requeued" not in events and _closed_batches(partial) >= 1):
                    _requeue(job["JobId"])
                    events["shard requeued"] = time.monotonic()
    finally:
        if run.poll() is None:
            run.terminate()
        for job in slurm_jobs():  # nothing of this test is left in the queue
            if job.get("WorkDir") == str(work) and job.get("JobState") in ("PENDING", "RUNNING"):
                subprocess.run(["scancel", job["JobId"]], timeout=30)
    out = run.communicate(timeout=60)[0]
    assert run.returncode == 0, out[-4000:]
    assert {"train requeued", "train paused", "shard requeued"} <= events.keys(), (events, out[-3000:])

    train = _rule_jobs(work, "train")
    states = [(j["JobState"], j["TimeLimit"], j["Restarts"]) for j in train]
    assert ("TIMEOUT", "00:01:00", "1") in states, states      # requeued once, then killed at its limit
    assert ("COMPLETED", "00:02:00", "0") in states, states     # retried with twice the time
    shard = [j for j in _rule_jobs(work, "attacks_shard") if "_0_2" in j.get("Comment", "")]
    assert [(j["JobState"], j["Restarts"]) for j in shard] == [("COMPLETED", "1")], shard
    # both resumed from their progress, and end with the bytes of the uninterrupted run
    resumed = re.search(r"resuming \w+ from epoch (\d+)", (work / TRAIN_LOG).read_text())
    assert resumed and int(resumed.group(1)) >= 2, (work / TRAIN_LOG).read_text()[-2000:]
    finished = re.search(r"resuming after (\d+) finished batches", (work / SHARD_LOG).read_text())
    assert finished and 1 <= int(finished.group(1)) < 5, (work / SHARD_LOG).read_text()[-2000:]
    assert (work / WEIGHTS).read_bytes() == (reference / WEIGHTS).read_bytes()
    assert (work / SHARD).read_bytes() == (reference / SHARD).read_bytes()
