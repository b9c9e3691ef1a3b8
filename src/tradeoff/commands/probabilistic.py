"""Probabilistic (eps, kappa) certification: ``probabilistic`` (one sampling pass over one shard; each test's
decided records come from ``merge probabilistic``)."""

from __future__ import annotations

import argparse

from ..probabilistic.records import TESTS, run_prob_shard
from .common import add_runtime_args, json_arg, runtime


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("probabilistic", help="(eps, kappa)-probabilistic certification: one sampling pass over a shard")
    add_runtime_args(p)
    p.add_argument("--data", required=True)
    p.add_argument("--classifier", required=True, help="classifier JSON")
    p.add_argument("--name", required=True, help="classifier id for the summary")
    p.add_argument("--tests", nargs="+", required=True, choices=TESTS,
                   help="tests the pass must allow deciding (with 'fixed' every point gets n_max samples)")
    p.add_argument("--settings", type=json_arg, required=True,
                   help="the config's probabilistic section (JSON): eps, norm, kappa, kappa_sweep, alpha, ...")
    p.add_argument("--shard", type=int, default=0, help="this shard's number, 0 ≤ shard < shards")
    p.add_argument("--shards", type=int, default=1, help="test point i goes to shard i mod shards")
    p.add_argument("--n-points", type=int, default=0, help="certify the first n test points (0 = all)")
    p.add_argument("--stop-after", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--out", required=True, help="raw per-sample record CSV of this shard")
    p.set_defaults(func=cmd_probabilistic)


def cmd_probabilistic(args: argparse.Namespace) -> None:
    run_prob_shard(args.data, args.classifier, args.name, tests=args.tests, section=args.settings, seed=args.seed,
                   shard=args.shard, shards=args.shards, n_points=args.n_points, out=args.out, device=runtime(args),
                   stop_after=args.stop_after, progress=not args.no_progress)
