"""Core stages: data preparation, base-model training, attack evaluation, the summary table."""

from __future__ import annotations

import argparse
import logging

from ..errors import TradeoffError
from ..io import provenance, read_json
from ..records import ATTACKS
from .common import add_runtime_args, add_shard_args, json_arg, runtime, seed_list, threat_from

log = logging.getLogger("tradeoff")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("check-env", help="log torch/CUDA versions and devices; fail if a requested GPU is missing")
    add_runtime_args(p)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_check_env)

    p = sub.add_parser("data", help="build a dataset's fixed splits")
    p.add_argument("--dataset", required=True, help="digits | tsipras | gauss3 | mnist | cifar10 | cifar100")
    p.add_argument("--params", type=json_arg, required=True, help="the dataset's config section (JSON)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    p.add_argument("--download-manifest", default=None,
                   help="the download stage's manifest (source and digests of the files), kept in the sidecar")
    p.set_defaults(func=cmd_prepare_data)

    p = sub.add_parser("train", help="train a model with one objective")
    add_runtime_args(p)
    p.add_argument("--data", required=True)
    p.add_argument("--name", required=True, help="classifier id (e.g. pgd_at)")
    p.add_argument("--arch", required=True)
    p.add_argument("--arch-options", type=json_arg, default={})
    p.add_argument("--objective", required=True)
    p.add_argument("--objective-params", type=json_arg, default={})
    p.add_argument("--threat", type=json_arg, required=True, help='{"norm": "Linf", "eps": 0.3}')
    p.add_argument("--train-params", type=json_arg, default={})
    p.add_argument("--init", default=None, help="classifier JSON to fine-tune from")
    p.add_argument("--checkpoint", required=True, help="per-epoch progress checkpoint (resume point)")
    p.add_argument("--stop-after-epoch", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--out", required=True, help="classifier JSON; weights go to the same name with .pt")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("attacks", help="per-sample evaluations of classifiers at one threat, batch by batch")
    add_runtime_args(p)
    p.add_argument("--data", required=True)
    p.add_argument("--classifier", nargs="+", required=True, help="classifier JSON(s), evaluated in turn")
    p.add_argument("--name", nargs="+", required=True, help="classifier id(s) for the summary, one per JSON")
    p.add_argument("--out-dir", nargs="+", required=True,
                   help="one folder per classifier: <attack>.csv for each evaluation (or, with --shards, "
                        "shards/<attacks joined by +>-<k>-of-<n>.csv for `merge attacks`)")
    p.add_argument("--attacks", nargs="+", required=True, choices=list(ATTACKS),
                   help="evaluations in the order they run (AutoAttack attacks what earlier attacks left)")
    p.add_argument("--threat", type=json_arg, required=True)
    p.add_argument("--params", type=json_arg, default={}, help="{evaluation: parameters} (JSON)")
    p.add_argument("--batch-size", type=int, default=500,
                   help="points per batch; the unit of seeding, sharding and resuming (results depend on it)")
    add_shard_args(p)
    p.add_argument("--split", choices=["test", "all"], default="test",
                   help="test: the test split | all: the whole official test set (when the test split subsamples it)")
    p.add_argument("--stop-after", type=int, default=None, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("attacks-worst", help="per-point worst case over several attacks' records of one classifier")
    p.add_argument("--name", required=True, help="classifier id for the summary")
    p.add_argument("--threat", type=json_arg, required=True, help="the threat every input must have been run at")
    p.add_argument("--out", required=True)
    p.add_argument("inputs", nargs="+", help="record CSVs (attacks, mixing-adaptive, era-composite, era-robustness); "
                                             "a point's breaking attack is the first in this order")
    p.set_defaults(func=cmd_worst)

    p = sub.add_parser("attacks-sanity", help="masked-gradient sanity checks on a summary table (Carlini et al. 2019)")
    p.add_argument("--summary", required=True, help="summary.csv (dataset, classifier, evaluation, norm, eps, ...)")
    p.add_argument("--params", type=json_arg, default={}, help="alpha, zero_tol, large_eps, blackbox_tol, "
                   "monotone_evaluations, stronger ([[weaker, stronger], ...])")
    p.add_argument("--out", required=True, help="one row per check and classifier: passed, reason")
    p.set_defaults(func=cmd_sanity)

    p = sub.add_parser("summary", help="concatenate the summary rows of per-sample records")
    p.add_argument("--out", required=True)
    p.add_argument("--seeds", type=seed_list, default=None,
                   help="the training seed of each record, comma-separated, one per input (default: 0 for all)")
    p.add_argument("inputs", nargs="+", help="record CSVs (their JSON sidecars hold the summary rows)")
    p.set_defaults(func=cmd_summarize)


def cmd_prepare_data(args: argparse.Namespace) -> None:
    from .. import data as data_mod

    if args.dataset not in data_mod.DATASETS:
        raise TradeoffError(f"unknown dataset '{args.dataset}' (known: {', '.join(data_mod.DATASETS)})")
    manifest = read_json(args.download_manifest) if args.download_manifest else None
    splits = data_mod.prepare(args.dataset, args.params, args.seed, args.out,
                              provenance({"dataset": args.dataset, **args.params}, args.seed), download=manifest)
    log.info("%s: %s", args.dataset, {s: splits.size(s) for s in data_mod.SPLITS})


def cmd_train(args: argparse.Namespace) -> None:
    from ..train import train_classifier

    train_classifier(args.data, args.out, name=args.name, arch=args.arch, arch_options=args.arch_options,
                     objective=args.objective, objective_params=args.objective_params, threat=args.threat,
                     train_params=args.train_params, checkpoint=args.checkpoint, seed=args.seed, device=runtime(args),
                     init=args.init, progress=not args.no_progress, stop_after_epoch=args.stop_after_epoch)


def cmd_evaluate(args: argparse.Namespace) -> None:
    from ..attacks.evaluate import evaluation_job

    if not len(args.classifier) == len(args.name) == len(args.out_dir):
        raise TradeoffError("evaluate: --classifier, --name and --out-dir need one value per classifier each")
    evaluation_job(args.data, list(zip(args.classifier, args.name, args.out_dir, strict=True)), args.attacks,
                   args.threat, args.params, seed=args.seed, device=runtime(args), batch_size=args.batch_size,
                   shard=args.shard, shards=args.shards, stop_after=args.stop_after, split=args.split)


def cmd_worst(args: argparse.Namespace) -> None:
    from ..attacks.worst import write_worst

    write_worst(args.inputs, args.name, threat_from(args.threat, None), args.threat, args.out)


def cmd_sanity(args: argparse.Namespace) -> None:
    from ..attacks.sanity import write_sanity

    write_sanity(args.summary, args.params, args.out)


def cmd_summarize(args: argparse.Namespace) -> None:
    from ..records import write_summary

    write_summary(args.inputs, args.out, args.seeds)


def cmd_check_env(args: argparse.Namespace) -> None:
    from ..device import write_environment_report

    write_environment_report(args.out, runtime(args), args.gpus)
