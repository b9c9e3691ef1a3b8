"""Mixing stage: fixed-α mixed classifiers, fitting the mixing network, its adaptive evaluation, and the
robust model's probability margins (the mechanism behind probability mixing)."""

from __future__ import annotations

import argparse
import logging

from ..errors import TradeoffError
from ..mixing.spec import MODES
from .common import add_runtime_args, add_shard_args, check_shard_args, json_arg, runtime, threat_from

log = logging.getLogger("tradeoff")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("mixing-spec", help="describe fixed-α mixed classifiers (JSONs over two base models)")
    p.add_argument("--accurate", required=True, help="JSON of the accurate base model g")
    p.add_argument("--robust", required=True, help="JSON of the robust base model h")
    p.add_argument("--alpha", type=float, nargs="+", required=True, help="one weight of h per mixture")
    p.add_argument("--mode", choices=MODES, required=True)
    p.add_argument("--temp-g", type=float, default=1.0)
    p.add_argument("--temp-h", type=float, default=1.0)
    p.add_argument("--temperatures", default=None, help="JSON of mixing-temperatures (overrides --temp-g/--temp-h)")
    p.add_argument("--name", nargs="+", required=True, help="one classifier id per α")
    p.add_argument("--out", nargs="+", required=True, help="one JSON per α")
    p.set_defaults(func=cmd_mix_spec)

    p = sub.add_parser("mixing-fit", help="fit the mixing network on the calibration split")
    add_runtime_args(p)
    p.add_argument("--data", required=True)
    p.add_argument("--accurate", required=True)
    p.add_argument("--robust", required=True)
    p.add_argument("--temp-g", type=float, default=1.0)
    p.add_argument("--temp-h", type=float, default=1.0)
    p.add_argument("--temperatures", default=None, help="JSON of mixing-temperatures (overrides --temp-g/--temp-h)")
    p.add_argument("--threat", type=json_arg, required=True)
    p.add_argument("--network", type=json_arg, default={}, help="mixing-network options (JSON)")
    p.add_argument("--fit", type=json_arg, required=True, help="fitting options: loop, loss, attack (JSON)")
    p.add_argument("--name", default="mixnet")
    p.add_argument("--checkpoint", required=True, help="per-epoch progress checkpoint (resume point)")
    p.add_argument("--out", required=True, help="classifier JSON; the network's weights go next to it (.pt)")
    p.set_defaults(func=cmd_fit_mixnet)

    p = sub.add_parser("mixing-adaptive", help="worst case of AutoAttack and the CE + w·BCE attack on a mixnet")
    add_runtime_args(p)
    p.add_argument("--data", required=True)
    p.add_argument("--classifier", required=True, help="mixing-network classifier JSON")
    p.add_argument("--name", required=True)
    p.add_argument("--autoattack", required=True, help="per-sample AutoAttack record of the same classifier")
    p.add_argument("--threat", type=json_arg, required=True)
    p.add_argument("--params", type=json_arg, required=True, help="w, steps, step_rel, restarts, momentum")
    p.add_argument("--suite", type=json_arg, default={}, help="attacks every composite gets (JSON: targets, "
                   "transfer, suite_steps, suite_step_rel, target_restarts, transfer_restarts); {} = none")
    p.add_argument("--batch-size", type=int, default=100, help="points per resumable chunk")
    add_shard_args(p)
    p.add_argument("--stop-after", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_adaptive)

    p = sub.add_parser("mixing-margins", help="per-sample probability margin of a model, clean and attacked")
    add_runtime_args(p)
    p.add_argument("--data", required=True)
    p.add_argument("--classifier", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--temp", type=float, default=1.0, help="inverse temperature T_h of the softmax")
    p.add_argument("--temperatures", default=None, help="JSON of mixing-temperatures: its temp_h overrides --temp")
    p.add_argument("--threat", type=json_arg, required=True)
    p.add_argument("--params", type=json_arg, required=True, help="PGD parameters (attacks.pgd)")
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_margins)

    p = sub.add_parser("mixing-temperatures", help="choose T_g and T_h on the calibration split (temperature scaling)")
    add_runtime_args(p)
    p.add_argument("--data", required=True)
    p.add_argument("--accurate", required=True, help="JSON of the accurate base model g")
    p.add_argument("--robust", required=True, help="JSON of the robust base model h")
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--out", required=True, help="JSON: temp_g, temp_h, calibration NLL before/after, provenance")
    p.set_defaults(func=cmd_mix_temperatures)


def cmd_mix_spec(args: argparse.Namespace) -> None:
    from ..mixing.spec import write_mix_specs

    if not len(args.alpha) == len(args.name) == len(args.out):
        raise TradeoffError("mixing-spec: --alpha, --name and --out need one value per mixture each")
    for alpha in args.alpha:
        if not 0.0 <= alpha <= 1.0:
            raise TradeoffError(f"--alpha must lie in [0, 1], got {alpha}")
    write_mix_specs(args.accurate, args.robust, args.alpha, args.name, args.out, mode=args.mode, temp_g=args.temp_g,
                    temp_h=args.temp_h, temperatures=args.temperatures)


def cmd_fit_mixnet(args: argparse.Namespace) -> None:
    from ..mixing.fitting import fit_mixnet_classifier

    fit_mixnet_classifier(args.data, args.accurate, args.robust, args.out, threat=args.threat, fit=args.fit,
                          network=args.network, name=args.name, checkpoint=args.checkpoint, seed=args.seed,
                          device=runtime(args), temp_g=args.temp_g, temp_h=args.temp_h,
                          temperatures=args.temperatures, progress=not args.no_progress)


def cmd_adaptive(args: argparse.Namespace) -> None:
    from .. import data as data_mod
    from ..classifiers import load_classifier, load_spec
    from ..mixing.evaluation import adaptive_evaluation
    from ..mixing.model import MixedClassifier

    check_shard_args(args)
    device = runtime(args)
    splits = data_mod.load(args.data)
    model = load_classifier(args.classifier, device)
    if not isinstance(model, MixedClassifier) or model.net is None:
        raise TradeoffError(f"{args.classifier} is not a mixing-network classifier")
    result = adaptive_evaluation(
        model, load_spec(args.classifier), splits, threat_from(args.threat, splits.bounds), name=args.name,
        autoattack=args.autoattack, params=args.params, suite=args.suite, threat_spec=args.threat, out=args.out,
        seed=args.seed, batch_size=args.batch_size, device=device, stop_after=args.stop_after, shard=args.shard,
        shards=args.shards)
    if result.write() and result.summary:
        log.info("%s / adaptive: accuracy %.4f (AutoAttack alone %.4f, adaptive attack alone %.4f), mean α clean "
                 "%.3f → attacked %.3f", args.name, *(r["value"] for r in result.summary[:5]))


def cmd_margins(args: argparse.Namespace) -> None:
    from ..mixing.evaluation import write_margins

    write_margins(args.data, args.classifier, args.out, name=args.name, threat=args.threat, params=args.params,
                  seed=args.seed, batch_size=args.batch_size, device=runtime(args), temp=args.temp,
                  temperatures=args.temperatures)


def cmd_mix_temperatures(args: argparse.Namespace) -> None:
    from ..mixing.calibration import write_temperatures

    write_temperatures(args.data, args.accurate, args.robust, args.out, batch_size=args.batch_size, seed=args.seed,
                       device=runtime(args))
