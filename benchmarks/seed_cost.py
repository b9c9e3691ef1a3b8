"""The cost of a run with N training seeds, read from a finished one-seed run (never typed by hand).

    python benchmarks/seed_cost.py --workdir <run> --seeds 5 [--log <Snakemake's log of the run>]

Every job of the run is either per seed (it trains or evaluates a model: it runs once per entry of `seeds`) or
once (what depends on the master seed only or reads every seed: the data splits, the environment check, the
summary, the sanity checks, the claims and the figures). The split follows the paths of Snakemake's benchmark
files under results/benchmarks/: <dataset>/data.tsv, check_env.tsv, the files at the top level and figures/ are
once, every other file is per seed. Prints a Markdown table per kind of job (jobs, wall and CPU seconds of one
seed, whether it multiplies) and the estimate for N seeds: CPU seconds = once + N × per seed; with the log,
the DAG's wall time scaled by the same ratio (the same parallel efficiency as the measured run).
"""

from __future__ import annotations

import argparse
import re
from datetime import datetime
from pathlib import Path

import pandas as pd

from tradeoff.readme import job_records

STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$", re.M)
ONCE_STEMS = ("data", "prepare_data", "check_env")


def runs_once(relative: Path) -> bool:
    """True for a benchmark file (relative to results/benchmarks/) of a job that a multi-seed run makes once."""
    parts = relative.parts
    return len(parts) == 1 or parts[0] == "figures" or (len(parts) == 2 and relative.stem in ONCE_STEMS)


def job_rows(results: Path) -> pd.DataFrame:
    """One row per benchmark file: kind, once, wall s, CPU s."""
    jobs = job_records(results)
    return jobs.assign(once=[runs_once(p) for p in jobs["path"]])[["kind", "once", "s", "cpu"]]


def dag_wall(log: Path) -> float | None:
    """The DAG's wall time in seconds: Snakemake's first to last timestamp."""
    stamps = [datetime.strptime(s, "%a %b %d %H:%M:%S %Y") for s in STAMP.findall(log.read_text(errors="replace"))]
    return (stamps[-1] - stamps[0]).total_seconds() if len(stamps) > 1 else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", default=".", help="the one-seed run's folder (holds results/)")
    parser.add_argument("--seeds", type=int, default=5, help="number of training seeds to estimate")
    parser.add_argument("--log", help="Snakemake's log of that run (its timestamps give the DAG's wall time)")
    args = parser.parse_args()
    jobs = job_rows(Path(args.workdir) / "results")
    if jobs.empty:
        raise SystemExit(f"no benchmark records under {args.workdir}/results/benchmarks")
    n = args.seeds
    table = jobs.groupby(["kind", "once"]).agg(jobs=("s", "size"), s=("s", "sum"), cpu=("cpu", "sum"))
    table = table.sort_values("cpu", ascending=False).reset_index()
    print(f"| job kind | runs | jobs (1 seed) | wall s | CPU s | CPU s ({n} seeds) |")
    print("|---|---|---:|---:|---:|---:|")
    for r in table.itertuples():
        factor = 1 if r.once else n
        print(f"| {r.kind} | {'once' if r.once else 'per seed'} | {r.jobs} | {r.s:.1f} | {r.cpu:.1f} | "
              f"{factor * r.cpu:.1f} |")
    once, per_seed = jobs[jobs.once].cpu.sum(), jobs[~jobs.once].cpu.sum()
    total = once + n * per_seed
    print(f"\nOne seed: {len(jobs)} jobs, CPU {once + per_seed:.0f} s ({per_seed:.0f} s per seed, {once:.0f} s once). "
          f"{n} seeds: {int((~jobs.once).sum()) * n + int(jobs.once.sum())} jobs, CPU {total:.0f} s "
          f"({total / 60:.1f} min; at least {total / 120:.1f} min wall on 2 cores).")
    wall = dag_wall(Path(args.log)) if args.log else None
    if wall:
        ratio = total / (once + per_seed)
        print(f"The one-seed DAG took {wall / 60:.1f} min wall; at the same parallel efficiency {n} seeds take "
              f"≈ {wall * ratio / 60:.1f} min (× {ratio:.2f}).")


if __name__ == "__main__":
    main()
