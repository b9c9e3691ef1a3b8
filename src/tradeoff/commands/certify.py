"""Certification stage: ``certify`` (Cohen et al.'s CERTIFY on one shard of the test points, resumable; the
records come from ``merge certify``)."""

from __future__ import annotations

import argparse

from ..certify.runner import run_shard
from .common import add_runtime_args, json_arg, runtime


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("certify", help="randomized-smoothing CERTIFY on one shard of the test points")
    add_runtime_args(p)
    p.add_argument("--data", required=True)
    p.add_argument("--classifier", required=True, help="JSON of the base classifier to smooth")
    p.add_argument("--sigma", type=float, required=True, help="noise level of the smoothing")
    p.add_argument("--params", type=json_arg, required=True,
                   help='{"n0", "n", "alpha", "points", "batch_size"} (the certify config section)')
    p.add_argument("--shard", type=int, required=True)
    p.add_argument("--shards", type=int, required=True)
    p.add_argument("--stop-after", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--out", required=True, help="per-sample shard CSV (a .partial file holds progress)")
    p.set_defaults(func=cmd_certify_shard)


def cmd_certify_shard(args: argparse.Namespace) -> None:
    run_shard(args.data, args.classifier, sigma=args.sigma, params=args.params, shard=args.shard,
              shards=args.shards, seed=args.seed, out=args.out, device=runtime(args), stop_after=args.stop_after,
              progress=not args.no_progress)
