"""Shards of the per-point stages (robustness, era-composite, adaptive-eval): their options and the one light
merge, ``merge-points``, that writes a stage's records from its shards (no torch import)."""

from __future__ import annotations

import argparse
import logging

from ..point_records import STAGES, check_shard, merge_shards

log = logging.getLogger("tradeoff")


def add_shard_args(parser: argparse.ArgumentParser) -> None:
    """``--shard k --shards n`` of a per-point stage command."""
    parser.add_argument("--shard", type=int, default=0, help="which shard this job is (0..shards-1)")
    parser.add_argument("--shards", type=int, default=1,
                        help="split the job into this many shards: shard k runs the chunks (of --batch-size "
                             "points) whose number c has c mod shards = k and writes <folder of --out>/shards/"
                             "<name of --out>-<k>-of-<n>.csv; `merge-points` then writes --out (results equal "
                             "one unsharded job's)")


def check_shard_args(args: argparse.Namespace) -> None:
    """Refuse (:class:`~tradeoff.errors.TradeoffError`) a shard number outside ``0..shards-1``."""
    check_shard(args.shard, args.shards)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("merge-points", help="merge the shards of a per-point stage (robustness, era-composite, "
                                            "adaptive-eval) into its records, summary rows and metadata")
    p.add_argument("--stage", required=True, choices=list(STAGES), help="the command the shards were made by")
    p.add_argument("--out", required=True, help="the records file (the --out the shards were given)")
    p.add_argument("shards", nargs="+", help="the shard records, one per shard")
    p.set_defaults(func=cmd_merge_points)


def cmd_merge_points(args: argparse.Namespace) -> None:
    summary = merge_shards(args.stage, args.shards, args.out)
    log.info("%s: %d shards merged into %s", args.stage, len(args.shards), args.out)
    for r in summary:
        log.info("%s / %s %s: %.4f on %d points", r["classifier"], r["evaluation"], r["metric"], r["value"],
                 r["n"])
