"""The default DAG's wall time and where it goes, read from a finished run (never typed by hand).

    rm -rf results .snakemake && /usr/bin/time -v snakemake --cores 2 2> dag.log
    python benchmarks/dag_timing.py --workdir . --log dag.log

prints a Markdown section: the number of jobs and the wall time from Snakemake's own log (its first and last
timestamps), the user and system CPU time when the log comes from ``/usr/bin/time -v``, and the jobs' own wall
time summed per kind of job from ``results/benchmarks/`` (the same table ``tradeoff readme`` writes).
"""

from __future__ import annotations

import argparse
import re
from datetime import datetime
from pathlib import Path

from tradeoff.readme import job_records, job_table

STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$", re.M)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", default=".", help="the run's folder (holds results/)")
    parser.add_argument("--cores", type=int, default=2, help="the cores the run had (`snakemake --cores`)")
    parser.add_argument("--log", required=True, help="Snakemake's stderr (optionally under /usr/bin/time -v)")
    args = parser.parse_args()
    text = Path(args.log).read_text(encoding="utf-8", errors="replace")
    stamps = [datetime.strptime(s, "%a %b %d %H:%M:%S %Y") for s in STAMP.findall(text)]
    done = re.findall(r"(\d+) of (\d+) steps \(100%\) done", text)
    lines = []
    if stamps and done:
        wall = (stamps[-1] - stamps[0]).total_seconds()
        lines.append(f"**{done[-1][1]} jobs, {int(wall // 60)} min {int(wall % 60)} s wall** (Snakemake's first to "
                     "last timestamp)")
    for label, key in (("user", "User time (seconds)"), ("system", "System time (seconds)")):
        m = re.search(rf"{re.escape(key)}: ([\d.]+)", text)
        if m:
            lines.append(f"{label} CPU {float(m.group(1)) / 60:.1f} min")
    print("; ".join(lines) + ".\n")
    results = Path(args.workdir) / "results"
    jobs = job_records(results)
    print(job_table(results, top=20, records=jobs))
    seconds = jobs["s"].tolist()
    if stamps and done and seconds:
        print(f"\nThe jobs' own wall times add up to {sum(seconds):.0f} s: {sum(seconds) / args.cores:.0f} s on "
              f"{args.cores} cores, against {wall:.0f} s of wall ({sum(seconds) / args.cores / wall:.0%} of it).")
    samples = sum(2 * min(s, 15) + max(0.0, s - 15) / 30 for s in seconds)
    print(f"Snakemake's `benchmark:` sampled the jobs' process trees about {samples:,.0f} times (every 0.5 s during "
          "a job's first 15 s, then every 30 s).")


if __name__ == "__main__":
    main()
