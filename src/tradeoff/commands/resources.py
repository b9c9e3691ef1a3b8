"""``tradeoff resources``: each rule's declared memory and time against its jobs' benchmark records."""

from __future__ import annotations

import argparse
import logging

from ..errors import TradeoffError

log = logging.getLogger("tradeoff")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("resources", help="compare each rule's declared mem_mb and runtime with its jobs' use "
                                         "(Snakemake's extended benchmark records)")
    p.add_argument("--benchmarks", default="results/benchmarks", help="folder of the run's benchmark records")
    p.add_argument("--out", default=None, help="also write one row per job to this CSV")
    p.set_defaults(func=cmd_resources)


def cmd_resources(args: argparse.Namespace) -> None:
    from ..io import write_records
    from ..resources import job_rows, overruns, per_rule, read_benchmarks

    jobs = read_benchmarks(args.benchmarks)
    print("| rule | jobs | declared mem_mb | max RSS MB | RSS / declared | declared runtime min | longest s | "
          "time / declared |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in per_rule(jobs):
        print(f"| {r['rule']} | {r['jobs']} | {r['mem_mb']:.0f} | {r['max_rss_mb']:.0f} | {r['memory_share']:.2f} "
              f"| {r['runtime_min']:.0f} | {r['max_s']:.1f} | {r['time_share']:.3f} |")
    if args.out:
        write_records(args.out, job_rows(jobs), {"benchmarks": str(args.benchmarks), "jobs": len(jobs)})
    over = overruns(jobs)
    if over:
        worst = max(over, key=lambda j: max(j.memory_share, j.time_share))
        raise TradeoffError(f"{worst.record}: {len(over)} of {len(jobs)} jobs used more than they declared (worst: "
                            f"rule {worst.rule}, {worst.max_rss_mb:.0f} of {worst.mem_mb:.0f} MB, {worst.seconds:.0f} "
                            f"s of {worst.runtime_min:.0f} min); raise the config's resources")
    log.info("%d jobs of %d rules within their declared memory and time", len(jobs), len(per_rule(jobs)))
