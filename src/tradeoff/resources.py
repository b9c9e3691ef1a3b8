"""Declared against used resources of a run's jobs, from its benchmark records.

A scheduler kills a job that uses more memory than it declared (SLURM's ``--mem``, from the job's ``mem_mb``)
or runs longer than its time limit (``--time``, from ``runtime`` in minutes). Every job of the workflow writes
a benchmark record (a TSV: wall seconds ``s``, peak resident memory ``max_rss`` in MB, …); written in the
extended format (the profiles ask for it) a record also carries the job's rule and the resources it was
given, so one folder of records holds both sides of the comparison.

Guarantees: :func:`read_benchmarks` reads every record under a folder or raises :class:`TradeoffError`
naming the file (and line) that lacks the extended columns or holds a malformed value; :func:`overruns`
lists exactly the jobs whose peak memory or wall time exceeds their declaration.
"""

from __future__ import annotations

import ast
import csv
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from .errors import TradeoffError

__all__ = ["JobUsage", "overruns", "per_rule", "read_benchmark", "read_benchmarks"]

NEEDED = ("s", "max_rss", "rule_name", "resources")


@dataclass(frozen=True)
class JobUsage:
    """One job's declaration (``mem_mb``; ``runtime`` in minutes) and use (peak RSS in MB; wall seconds)."""

    record: str
    rule: str
    mem_mb: float
    runtime_min: float
    max_rss_mb: float
    seconds: float

    @property
    def memory_share(self) -> float:
        """Peak resident memory over declared memory (above 1: the scheduler would kill the job)."""
        return self.max_rss_mb / self.mem_mb

    @property
    def time_share(self) -> float:
        """Wall time over the declared time limit."""
        return self.seconds / (60.0 * self.runtime_min)


def read_benchmark(path: str | Path) -> list[JobUsage]:
    """The jobs of one benchmark record (one per repeat line); :class:`TradeoffError` naming the file and line
    when it lacks the extended columns (``rule_name``, ``resources``), or a value is malformed or missing."""
    p = Path(path)
    with open(p, encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    if not rows or any(c not in rows[0] for c in NEEDED):
        raise TradeoffError(f"{p}: not an extended benchmark record (no {', '.join(NEEDED)} columns): run "
                            "Snakemake with --benchmark-extended (the profiles set it)")
    jobs = []
    for line, row in enumerate(rows, start=2):
        try:
            declared = ast.literal_eval(row["resources"])
            jobs.append(JobUsage(str(p), row["rule_name"], float(declared["mem_mb"]), float(declared["runtime"]),
                                 _measured(row["max_rss"]), float(row["s"])))
        except (ValueError, SyntaxError, KeyError, TypeError) as exc:
            raise TradeoffError(f"{p}, line {line}: malformed benchmark row ({type(exc).__name__}: {exc}); "
                                "mem_mb and runtime must be declared and max_rss, s measured") from None
    return jobs


def _measured(value: str) -> float:
    """A measured value, NaN where Snakemake wrote ``NA`` (a job too short to be sampled)."""
    return math.nan if value == "NA" else float(value)


def _largest(values: Sequence[float]) -> float:
    """The largest of the values that were measured (NaN if none was)."""
    measured = [v for v in values if not math.isnan(v)]
    return max(measured) if measured else math.nan


def read_benchmarks(root: str | Path) -> list[JobUsage]:
    """Every job of the benchmark records under ``root`` (``*.tsv``, recursively, in path order)."""
    paths = sorted(Path(root).rglob("*.tsv"))
    if not paths:
        raise TradeoffError(f"{root}: no benchmark records (*.tsv) found")
    return [job for p in paths for job in read_benchmark(p)]


def overruns(jobs: Sequence[JobUsage]) -> list[JobUsage]:
    """The jobs that used more memory or time than they declared (an unmeasured peak, NaN, is no overrun)."""
    return [j for j in jobs if j.memory_share > 1.0 or j.time_share > 1.0]


def per_rule(jobs: Sequence[JobUsage]) -> list[dict[str, float | int | str]]:
    """Per rule: how many jobs, the largest declaration and the largest use of memory and time, and the largest
    shares of use over declaration (by job), sorted by memory share, largest first."""
    rules: dict[str, list[JobUsage]] = {}
    for job in jobs:
        rules.setdefault(job.rule, []).append(job)
    table = [{"rule": rule, "jobs": len(js), "mem_mb": max(j.mem_mb for j in js),
              "max_rss_mb": _largest([j.max_rss_mb for j in js]),
              "memory_share": _largest([j.memory_share for j in js]),
              "runtime_min": max(j.runtime_min for j in js), "max_s": max(j.seconds for j in js),
              "time_share": max(j.time_share for j in js)} for rule, js in rules.items()]
    return sorted(table, key=lambda r: -float(r["memory_share"]))


def job_rows(jobs: Sequence[JobUsage]) -> list[dict[str, float | str]]:
    """One row per job (for a CSV): its record, rule, declaration, use and shares."""
    return [{**asdict(j), "memory_share": j.memory_share, "time_share": j.time_share} for j in jobs]
