"""Mixing stage: fixed-α mixed classifiers, fitting the mixing network, its adaptive evaluation, and the
robust model's probability margins (the mechanism behind probability mixing)."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from .. import data as data_mod
from ..classifiers import load_classifier, load_spec
from ..errors import TradeoffError
from ..io import ArtifactError, provenance, read_json, save_torch, write_json, write_records
from ..mixing import (
    MARGIN_COLUMNS,
    MODES,
    MixedClassifier,
    adaptive_evaluation,
    fit_mixing_network,
    margin_records,
    spec_digest,
)
from .common import add_runtime_args, json_arg, runtime, threat_from

log = logging.getLogger("tradeoff")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("mix-spec", help="describe fixed-α mixed classifiers (JSONs over two base models)")
    p.add_argument("--accurate", required=True, help="JSON of the accurate base model g")
    p.add_argument("--robust", required=True, help="JSON of the robust base model h")
    p.add_argument("--alpha", type=float, nargs="+", required=True, help="one weight of h per mixture")
    p.add_argument("--mode", choices=MODES, required=True)
    p.add_argument("--temp-g", type=float, default=1.0)
    p.add_argument("--temp-h", type=float, default=1.0)
    p.add_argument("--temperatures", default=None, help="JSON of mix-temperatures (overrides --temp-g/--temp-h)")
    p.add_argument("--name", nargs="+", required=True, help="one classifier id per α")
    p.add_argument("--out", nargs="+", required=True, help="one JSON per α")
    p.set_defaults(func=cmd_mix_spec)

    p = sub.add_parser("fit-mixnet", help="fit the mixing network on the calibration split")
    add_runtime_args(p)
    p.add_argument("--data", required=True)
    p.add_argument("--accurate", required=True)
    p.add_argument("--robust", required=True)
    p.add_argument("--temp-g", type=float, default=1.0)
    p.add_argument("--temp-h", type=float, default=1.0)
    p.add_argument("--temperatures", default=None, help="JSON of mix-temperatures (overrides --temp-g/--temp-h)")
    p.add_argument("--threat", type=json_arg, required=True)
    p.add_argument("--network", type=json_arg, default={}, help="mixing-network options (JSON)")
    p.add_argument("--fit", type=json_arg, required=True, help="fitting options: loop, loss, attack (JSON)")
    p.add_argument("--name", default="mixnet")
    p.add_argument("--checkpoint", required=True, help="per-epoch progress checkpoint (resume point)")
    p.add_argument("--out", required=True, help="classifier JSON; the network's weights go next to it (.pt)")
    p.set_defaults(func=cmd_fit_mixnet)

    p = sub.add_parser("adaptive-eval", help="worst case of AutoAttack and the CE + w·BCE attack on a mixnet")
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
    p.add_argument("--stop-after", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_adaptive)

    p = sub.add_parser("robust-margins", help="per-sample probability margin of a model, clean and attacked")
    add_runtime_args(p)
    p.add_argument("--data", required=True)
    p.add_argument("--classifier", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--temp", type=float, default=1.0, help="inverse temperature T_h of the softmax")
    p.add_argument("--temperatures", default=None, help="JSON of mix-temperatures: its temp_h overrides --temp")
    p.add_argument("--threat", type=json_arg, required=True)
    p.add_argument("--params", type=json_arg, required=True, help="PGD parameters (attacks.pgd)")
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_margins)
    register_temperatures(sub)


def _rel(target: str | Path, out: str | Path) -> str:
    """Path of ``target`` relative to the folder of ``out`` (classifier JSONs reference each other so)."""
    return os.path.relpath(Path(target).resolve(), Path(out).resolve().parent)


def cmd_mix_spec(args: argparse.Namespace) -> None:
    if not len(args.alpha) == len(args.name) == len(args.out):
        raise TradeoffError("mix-spec: --alpha, --name and --out need one value per mixture each")
    for alpha in args.alpha:
        if not 0.0 <= alpha <= 1.0:
            raise TradeoffError(f"--alpha must lie in [0, 1], got {alpha}")
    apply_temperatures(args)
    g, h = read_json(args.accurate), read_json(args.robust)
    if g["dataset"] != h["dataset"] or g["num_classes"] != h["num_classes"]:
        raise ArtifactError(f"{args.accurate} and {args.robust} are models of different data")
    for alpha, name, out in zip(args.alpha, args.name, args.out, strict=True):
        body = {"kind": "mix", "name": name, "dataset": g["dataset"], "num_classes": g["num_classes"],
                "accurate": _rel(args.accurate, out), "robust": _rel(args.robust, out),
                "alpha": alpha, "mode": args.mode, "temp_g": args.temp_g, "temp_h": args.temp_h}
        body["sha256"] = spec_digest({**body, "accurate_sha256": g["sha256"], "robust_sha256": h["sha256"]})
        write_json(out, {**body, "accurate_sha256": g["sha256"], "robust_sha256": h["sha256"]})


def cmd_fit_mixnet(args: argparse.Namespace) -> None:
    device = runtime(args)
    apply_temperatures(args)
    splits = data_mod.load(args.data)
    bases = {"accurate_sha256": load_spec(args.accurate)["sha256"], "robust_sha256": load_spec(args.robust)["sha256"]}
    net, history, run_config = fit_mixing_network(
        load_classifier(args.accurate, device), load_classifier(args.robust, device), splits,
        threat_from(args.threat, splits.bounds), fit=args.fit, network=args.network, temp_g=args.temp_g,
        temp_h=args.temp_h, name=args.name, threat_spec=args.threat, bases=bases, checkpoint=args.checkpoint,
        seed=args.seed, device=device, progress=not args.no_progress)
    digest = save_torch(net.state_dict(), Path(args.out).with_suffix(".pt"))
    body = {"kind": "mixnet", "name": args.name, "dataset": splits.name, "num_classes": splits.num_classes,
            "accurate": _rel(args.accurate, args.out), "robust": _rel(args.robust, args.out), "mode": "prob",
            "temp_g": args.temp_g, "temp_h": args.temp_h, "network": run_config["network"], "weights_sha256": digest}
    body["sha256"] = spec_digest({**body, **bases})
    write_json(args.out, {**body, **bases, "history": history, **provenance(run_config, args.seed)})


def cmd_adaptive(args: argparse.Namespace) -> None:
    device = runtime(args)
    splits = data_mod.load(args.data)
    model = load_classifier(args.classifier, device)
    if not isinstance(model, MixedClassifier) or model.net is None:
        raise TradeoffError(f"{args.classifier} is not a mixing-network classifier")
    result = adaptive_evaluation(
        model, load_spec(args.classifier), splits, threat_from(args.threat, splits.bounds), name=args.name,
        autoattack=args.autoattack, params=args.params, suite=args.suite, threat_spec=args.threat, out=args.out,
        seed=args.seed, batch_size=args.batch_size, device=device, stop_after=args.stop_after)
    if result.write():
        log.info("%s / adaptive: accuracy %.4f (AutoAttack alone %.4f, adaptive attack alone %.4f), mean α clean "
                 "%.3f → attacked %.3f", args.name, *(r["value"] for r in result.summary[:5]))


def cmd_margins(args: argparse.Namespace) -> None:
    device = runtime(args)
    apply_temperatures(args)
    splits = data_mod.load(args.data)
    rows, meta = margin_records(
        load_classifier(args.classifier, device), splits, threat_from(args.threat, splits.bounds), args.params,
        args.temp, name=args.name, classifier_sha256=load_spec(args.classifier).get("sha256"),
        threat_spec=args.threat, seed=args.seed, batch_size=args.batch_size, device=device)
    write_records(args.out, rows, meta, columns=MARGIN_COLUMNS)
    summary = meta["summary_rows"]
    log.info("%s: mean probability margin %.3f on %d correct-under-attack points, %.3f on %d wrong-clean",
             args.name, summary[0]["value"], summary[0]["n"], summary[1]["value"], summary[1]["n"])


# ----------------------------------------------------------------------------------------------------------
# Temperatures on the calibration split (temperature scaling, Guo et al. 2017)
# ----------------------------------------------------------------------------------------------------------


def register_temperatures(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("mix-temperatures", help="choose T_g and T_h on the calibration split (temperature scaling)")
    add_runtime_args(p)
    p.add_argument("--data", required=True)
    p.add_argument("--accurate", required=True, help="JSON of the accurate base model g")
    p.add_argument("--robust", required=True, help="JSON of the robust base model h")
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--out", required=True, help="JSON: temp_g, temp_h, calibration NLL before/after, provenance")
    p.set_defaults(func=cmd_mix_temperatures)


def apply_temperatures(args: argparse.Namespace) -> None:
    """With ``--temperatures <json>`` (written by mix-temperatures), set ``args.temp_g``/``temp_h`` (and
    ``args.temp``, robust-margins' T_h) from it. Raises :class:`ArtifactError` unless the file was fitted for
    the same base models (their ``sha256``)."""
    if getattr(args, "temperatures", None) is None:
        return
    temps = read_json(args.temperatures)
    models = {"accurate": getattr(args, "accurate", None),
              "robust": getattr(args, "robust", None) or getattr(args, "classifier", None)}
    for role, path in models.items():
        if path is not None and read_json(path)["sha256"] != temps[f"{role}_sha256"]:
            raise ArtifactError(f"{args.temperatures}: fitted for another {role} model than {path}")
    args.temp_g, args.temp_h = float(temps["temp_g"]), float(temps["temp_h"])
    if hasattr(args, "temp"):
        args.temp = args.temp_h


def cmd_mix_temperatures(args: argparse.Namespace) -> None:
    from ..mixing import TEMP_BOUNDS, calibrate_temperatures

    device = runtime(args)
    splits = data_mod.load(args.data)
    g, h = load_classifier(args.accurate, device), load_classifier(args.robust, device)
    fits = calibrate_temperatures(g, h, splits.x("calib"), splits.y("calib"), args.batch_size, device)
    for role, fit in fits.items():
        log.info("T_%s = %.4g: calibration NLL %.4f → %.4f (%d points)", role, fit.temp, fit.nll_before,
                 fit.nll_after, fit.n)
    bases = {"accurate_sha256": load_spec(args.accurate)["sha256"], "robust_sha256": load_spec(args.robust)["sha256"],
             "data_sha256": splits.meta["sha256"]}
    write_json(args.out, {
        "temp_g": fits["g"].temp, "temp_h": fits["h"].temp, "split": "calib", "n": fits["g"].n,
        "method": "temperature scaling (Guo et al. 2017): T minimizing the calibration NLL of softmax(T·logits)",
        "bounds": list(TEMP_BOUNDS),
        "nll": {role: {"before": fit.nll_before, "after": fit.nll_after} for role, fit in fits.items()},
        **bases, **provenance({"accurate": str(args.accurate), "robust": str(args.robust), **bases}, args.seed),
    })
