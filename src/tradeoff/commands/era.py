"""ERA stage: robustness records (attack towards the own prediction), the compositional classifier
``era-composite`` (its description, its joined and end-to-end adaptive evaluation). The evaluations are
:mod:`tradeoff.era`'s."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import TradeoffError
from ..io import provenance, read_json, sidecar, write_json
from .common import add_runtime_args, add_shard_args, check_shard_args, json_arg, runtime, threat_from

log = logging.getLogger("tradeoff")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("era-robustness", help="robust accuracy / inaccuracy: attack each point towards changing "
                                          "the model's own prediction")
    add_runtime_args(p)
    p.add_argument("--data", required=True)
    p.add_argument("--classifier", required=True, help="classifier JSON")
    p.add_argument("--name", required=True, help="classifier id for the summary")
    p.add_argument("--threat", type=json_arg, required=True, help='{"norm": "Linf", "eps": 0.3}')
    p.add_argument("--params", type=json_arg, default={}, help="the attack (JSON: steps, step_rel, restarts, "
                                                               "apgd, apgd_iter)")
    p.add_argument("--batch-size", type=int, default=500, help="points per resumable chunk")
    p.add_argument("--combine", nargs="*", default=[], help="records of label attacks (evaluate) on the same model "
                   "and threat: their flips of correctly classified points count too")
    p.add_argument("--combine-decides-correct", action="store_true",
                   help="a correctly classified point is robust iff no --combine attack flipped it (the same event: "
                        "its prediction is its label); the own-prediction attack runs on the misclassified points")
    p.add_argument("--clean-row", action="store_true", help="also put the clean accuracy into the summary")
    p.add_argument("--coordinates", action="store_true", help="add the 2-D input coordinates as x0, x1")
    p.add_argument("--grid-out", default=None, help="also write the predictions on a grid (2-D data)")
    p.add_argument("--grid-size", type=int, default=200)
    add_shard_args(p)
    p.add_argument("--stop-after", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_robustness)

    p = sub.add_parser("era-composite-spec", help="describe the compositional classifier (robust model, "
                                                  "standard model, robustness-indicator selector)")
    p.add_argument("--data", required=True, help="dataset artifact (for its input bounds)")
    p.add_argument("--robust", required=True, help="classifier JSON of the robust (branch) model")
    p.add_argument("--standard", required=True, help="classifier JSON of the standard (trunk) model")
    p.add_argument("--selector", type=json_arg, required=True, help="selector description (JSON)")
    p.add_argument("--threat", type=json_arg, required=True)
    p.add_argument("--name", default="era-composite")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_composite_spec)

    p = sub.add_parser("era-composite", help="evaluate the compositional classifier: joined records and the "
                                             "end-to-end adaptive attack")
    add_runtime_args(p)
    p.add_argument("--data", required=True)
    p.add_argument("--classifier", required=True, help="composite JSON (era-composite-spec)")
    p.add_argument("--name", default="era-composite")
    p.add_argument("--robust-records", required=True, help="robustness records of the robust model")
    p.add_argument("--standard-records", required=True, help="robustness records of the standard model")
    p.add_argument("--params", type=json_arg, default={}, help="adaptive attack (JSON: steps, step_rel, "
                                                               "restarts, lambdas)")
    p.add_argument("--suite", type=json_arg, default={}, help="attacks every composite gets (JSON: targets, "
                   "transfer, suite_steps, suite_step_rel, target_restarts, transfer_restarts); {} = none")
    p.add_argument("--strong", type=json_arg, default=None, help="the strong robustness test (JSON, as "
                   "`robustness --params`) for the offline 2ε soundness check and the selector's false-accept "
                   "rate; absent = the runtime selector's own test only")
    p.add_argument("--batch-size", type=int, default=500, help="points per resumable chunk")
    add_shard_args(p)
    p.add_argument("--stop-after", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_composite)


def cmd_robustness(args: argparse.Namespace) -> None:
    from .. import data as data_mod
    from ..classifiers import load_classifier, load_spec
    from ..era import robustness_records, write_grid

    check_shard_args(args)
    if args.grid_out and args.shards is not None:
        raise TradeoffError("era-robustness: --grid-out needs the whole job (no --shards)")
    device = runtime(args)
    splits = data_mod.load(args.data)
    threat = threat_from(args.threat, splits.bounds)
    model = load_classifier(args.classifier, device)
    result = robustness_records(
        model, splits, threat, args.params, name=args.name, classifier_sha256=load_spec(args.classifier).get("sha256"),
        threat_spec=args.threat, out=args.out, seed=args.seed, batch_size=args.batch_size, device=device,
        combine=args.combine, combine_decides_correct=args.combine_decides_correct, coordinates=args.coordinates,
        clean_row=args.clean_row, stop_after=args.stop_after, shard=args.shard, shards=args.shards)
    if not result.write():
        return
    _log_rows(result.summary)
    if args.grid_out:
        write_grid(model, splits.x("test"), args.grid_size, args.grid_out, device,
                   {"classifier": args.name, "dataset": splits.name})


def cmd_composite_spec(args: argparse.Namespace) -> None:
    # a light job: the descriptions are JSON, read without torch (classifiers.load_spec is read_json)
    splits_meta = read_json(sidecar(args.data))
    robust, standard = read_json(args.robust), read_json(args.standard)
    if robust["num_classes"] != standard["num_classes"]:
        raise TradeoffError("the robust and the standard model predict different numbers of classes")
    write_json(args.out, {
        "kind": "era-composite", "name": args.name, "dataset": splits_meta["dataset"],
        "robust": args.robust, "standard": args.standard, "selector": args.selector, "threat": args.threat,
        "bounds": splits_meta["bounds"], "num_classes": robust["num_classes"],
        "sha256": {"robust": robust.get("sha256"), "standard": standard.get("sha256")},
        **provenance({"selector": args.selector, "threat": args.threat}, None),
    })


def cmd_composite(args: argparse.Namespace) -> None:
    from .. import data as data_mod
    from ..classifiers import load_classifier, load_spec
    from ..era import composite_evaluation

    check_shard_args(args)
    device = runtime(args)
    splits = data_mod.load(args.data)
    spec = load_spec(args.classifier)
    result = composite_evaluation(
        load_classifier(args.classifier, device), spec, splits, threat_from(spec["threat"], splits.bounds),
        name=args.name, params=args.params, suite=args.suite, strong=args.strong,
        robust_records=args.robust_records, standard_records=args.standard_records, out=args.out, seed=args.seed,
        batch_size=args.batch_size, device=device, stop_after=args.stop_after, shard=args.shard,
        shards=args.shards)
    if result.write():
        _log_rows(result.summary)


def _log_rows(rows: Sequence[Mapping[str, Any]]) -> None:
    for r in rows:
        log.info("%s / %s %s: %.4f on %d points", r["classifier"], r["evaluation"], r["metric"], r["value"],
                 r["n"])
