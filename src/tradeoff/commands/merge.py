"""``tradeoff merge <stage>``: the one light job that finishes every per-point stage from its shard records.

Every per-point stage runs as n shard jobs (n = 1 included) and this merge: ``attacks`` (the attack
evaluation's per-evaluation records), ``era-robustness``, ``era-composite`` and ``mixing-adaptive`` (the
resumable point jobs of :mod:`tradeoff.point_records`), ``certify`` (Cohen et al.'s records and the mixed
classifier's certificates from the Monte-Carlo counts) and ``probabilistic`` (each test's decided records).
Each stage's reader is imported only when its merge runs, so the light merges start without torch.
"""

from __future__ import annotations

import argparse
import logging

from .common import add_runtime_args, json_arg, runtime, threat_from

log = logging.getLogger("tradeoff")

POINT_STAGES = ("era-robustness", "era-composite", "mixing-adaptive")
"""The point jobs' stages (:data:`tradeoff.point_records.STAGES`, not imported here: it pulls in numpy)."""


def register(sub: argparse._SubParsersAction) -> None:
    merge = sub.add_parser("merge", help="merge a per-point stage's shard records into its records and summary rows")
    stages = merge.add_subparsers(dest="stage", required=True)

    p = stages.add_parser("attacks", help="an attack evaluation's shards → its per-evaluation records")
    p.add_argument("--name", required=True, help="classifier id for the summary")
    p.add_argument("--attacks", nargs="+", required=True, help="the evaluations the shards ran, in order")
    p.add_argument("--threat", type=json_arg, required=True)
    p.add_argument("--params", type=json_arg, default={})
    p.add_argument("--out-dir", required=True, help="the classifier's folder (writes <attack>.csv)")
    p.add_argument("--worst", default=None, help="also write the per-point worst case over the merged attacks "
                   "(every evaluation but clean, in the order given) to this file, as `attacks-worst` would")
    p.add_argument("shards", nargs="+", help="the shard records")
    p.set_defaults(func=merge_attacks)

    for stage in POINT_STAGES:
        p = stages.add_parser(stage, help=f"the {stage} shards → its records, summary rows and metadata")
        p.add_argument("--out", required=True, help="the records file (the --out the shards were given)")
        p.add_argument("shards", nargs="+", help="the shard records, one per shard")
        p.set_defaults(func=merge_points)

    p = stages.add_parser("certify", help="certification shards → Cohen et al.'s and the mixed classifier's records")
    add_runtime_args(p)
    p.add_argument("--data", required=True)
    p.add_argument("--name", required=True, help="id of the smoothed classifier (e.g. gauss_aug-0.25)")
    p.add_argument("--standard", required=True, help="JSON of the standard model g of the mixed classifier")
    p.add_argument("--sigma", type=float, required=True)
    p.add_argument("--params", type=json_arg, required=True,
                   help='{"n0", "n", "alpha", "points", "radii", "mix_alphas"} (the certify config section)')
    p.add_argument("--out-rs", required=True)
    p.add_argument("--out-mixed", required=True)
    p.add_argument("shards", nargs="+", help="the shard CSVs")
    p.set_defaults(func=merge_certify)

    p = stages.add_parser("probabilistic",
                          help="sampling shards → each test's decided records, with metrics and summary rows")
    p.add_argument("--plan", type=json_arg, required=True,
                   help='JSON list, one item per classifier: {"shards": [raw CSVs], "pgd": PGD records or null, '
                        '"out": {"fixed": CSV, "sequential": CSV}}')
    p.set_defaults(func=merge_probabilistic)


def merge_attacks(args: argparse.Namespace) -> None:
    from ..records import merge_evaluation_shards

    threat = threat_from(args.threat, None)
    merge_evaluation_shards(args.shards, args.out_dir, args.name, args.attacks, threat, args.params)
    if args.worst:
        from ..attacks.worst import write_worst

        inputs = [f"{args.out_dir}/{a}.csv" for a in args.attacks if a != "clean"]
        write_worst(inputs, args.name, threat, args.threat, args.worst)


def merge_points(args: argparse.Namespace) -> None:
    from ..point_records import merge_shards

    summary = merge_shards(args.stage, args.shards, args.out)
    log.info("%s: %d shards merged into %s", args.stage, len(args.shards), args.out)
    for r in summary:
        log.info("%s / %s %s: %.4f on %d points", r["classifier"], r["evaluation"], r["metric"], r["value"],
                 r["n"])


def merge_certify(args: argparse.Namespace) -> None:
    from ..certify.runner import run_merge

    run_merge(args.data, args.name, args.standard, sigma=args.sigma, params=args.params, seed=args.seed,
              shard_records=args.shards, out_rs=args.out_rs, out_mixed=args.out_mixed, device=runtime(args))


def merge_probabilistic(args: argparse.Namespace) -> None:
    from ..probabilistic.records import run_prob_merge

    for item in args.plan:
        run_prob_merge(list(item["shards"]), item.get("pgd"), dict(item["out"]))
