"""Mixing stage: fixed-α mixed classifiers, fitting the mixing network, its adaptive evaluation, and the
robust model's probability margins (the mechanism behind probability mixing)."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import data as data_mod
from ..attacks.adaptive import CompositeSuite, composite_suite, mixnet_worst_case
from ..attacks.pgd import attack_model
from ..classifiers import load_classifier, load_spec
from ..evaluate import perturbation_size, summary_row
from ..io import (
    ArtifactError,
    ResumableCSV,
    provenance,
    read_json,
    read_records,
    save_torch,
    write_json,
    write_records,
)
from ..mixing import (
    MODES,
    CompositeLoss,
    FitAttack,
    MixedClassifier,
    MixingNetwork,
    NetworkOptions,
    fit_objective,
    network_options_dict,
    probability_margin,
    spec_digest,
)
from ..train import TrainConfig, fingerprint, train
from .common import add_runtime_args, json_arg, runtime, threat_from

log = logging.getLogger("tradeoff")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("mix-spec", help="describe a fixed-α mixed classifier (a JSON over two base models)")
    p.add_argument("--accurate", required=True, help="JSON of the accurate base model g")
    p.add_argument("--robust", required=True, help="JSON of the robust base model h")
    p.add_argument("--alpha", type=float, required=True)
    p.add_argument("--mode", choices=MODES, required=True)
    p.add_argument("--temp-g", type=float, default=1.0)
    p.add_argument("--temp-h", type=float, default=1.0)
    p.add_argument("--name", required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_mix_spec)

    p = sub.add_parser("fit-mixnet", help="fit the mixing network on the calibration split")
    add_runtime_args(p)
    p.add_argument("--data", required=True)
    p.add_argument("--accurate", required=True)
    p.add_argument("--robust", required=True)
    p.add_argument("--temp-g", type=float, default=1.0)
    p.add_argument("--temp-h", type=float, default=1.0)
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
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_adaptive)

    p = sub.add_parser("robust-margins", help="per-sample probability margin of a model, clean and attacked")
    add_runtime_args(p)
    p.add_argument("--data", required=True)
    p.add_argument("--classifier", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--temp", type=float, default=1.0, help="inverse temperature T_h of the softmax")
    p.add_argument("--threat", type=json_arg, required=True)
    p.add_argument("--params", type=json_arg, required=True, help="PGD parameters (attacks.pgd)")
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_margins)


def _rel(target: str | Path, out: str | Path) -> str:
    """Path of ``target`` relative to the folder of ``out`` (classifier JSONs reference each other so)."""
    return os.path.relpath(Path(target).resolve(), Path(out).resolve().parent)


def cmd_mix_spec(args: argparse.Namespace) -> None:
    if not 0.0 <= args.alpha <= 1.0:
        raise SystemExit(f"--alpha must lie in [0, 1], got {args.alpha}")
    g, h = read_json(args.accurate), read_json(args.robust)
    if g["dataset"] != h["dataset"] or g["num_classes"] != h["num_classes"]:
        raise ArtifactError(f"{args.accurate} and {args.robust} are models of different data")
    body = {"kind": "mix", "name": args.name, "dataset": g["dataset"], "num_classes": g["num_classes"],
            "accurate": _rel(args.accurate, args.out), "robust": _rel(args.robust, args.out),
            "alpha": args.alpha, "mode": args.mode, "temp_g": args.temp_g, "temp_h": args.temp_h}
    body["sha256"] = spec_digest({**body, "accurate_sha256": g["sha256"], "robust_sha256": h["sha256"]})
    write_json(args.out, {**body, "accurate_sha256": g["sha256"], "robust_sha256": h["sha256"]})


def cmd_fit_mixnet(args: argparse.Namespace) -> None:
    device = runtime(args)
    splits = data_mod.load(args.data)
    threat = threat_from(args.threat, splits.bounds)
    fit = dict(args.fit)
    loss = CompositeLoss(**fit.pop("loss", {}))
    attack = FitAttack(**fit.pop("attack", {}))
    cfg = TrainConfig.from_mapping({"optimizer": "adamw", **fit, "seed": args.seed})
    options = NetworkOptions.from_mapping(args.network)
    g, h = load_classifier(args.accurate, device), load_classifier(args.robust, device)
    torch.manual_seed(args.seed)
    net = MixingNetwork(g.feature_channels, h.feature_channels, options)
    model = MixedClassifier(g, h, net, "prob", args.temp_g, args.temp_h).to(device)
    g_spec, h_spec = load_spec(args.accurate), load_spec(args.robust)
    run_config = {
        "name": args.name, "network": network_options_dict(options), "fit": vars(cfg), "loss": vars(loss),
        "attack": vars(attack), "threat": args.threat, "temp_g": args.temp_g, "temp_h": args.temp_h,
        "accurate_sha256": g_spec["sha256"], "robust_sha256": h_spec["sha256"],
        "data_sha256": splits.meta["sha256"],
    }
    x_cal, y_cal = splits.x("calib"), splits.y("calib")

    @torch.no_grad()
    def monitor(m: torch.nn.Module) -> dict[str, float]:
        res = m.forward_all(x_cal.to(device))
        return {"calib_acc": float((res.out.argmax(1).cpu() == y_cal).float().mean()),
                "calib_alpha": float(res.alpha.mean())}

    log.info("fitting the mixing network (%d parameters) on %d calibration points",
             sum(p.numel() for p in net.parameters()), x_cal.shape[0])
    history = train(model, fit_objective(threat, attack, loss), x_cal, y_cal, cfg, args.checkpoint,
                    fingerprint(run_config), device, evaluate=monitor, progress=not args.no_progress)
    net.cpu()
    digest = save_torch(net.state_dict(), Path(args.out).with_suffix(".pt"))
    body = {"kind": "mixnet", "name": args.name, "dataset": splits.name, "num_classes": splits.num_classes,
            "accurate": _rel(args.accurate, args.out), "robust": _rel(args.robust, args.out), "mode": "prob",
            "temp_g": args.temp_g, "temp_h": args.temp_h, "network": network_options_dict(options),
            "weights_sha256": digest}
    bases = {"accurate_sha256": g_spec["sha256"], "robust_sha256": h_spec["sha256"]}
    body["sha256"] = spec_digest({**body, **bases})
    write_json(args.out, {**body, **bases, "history": history, **provenance(run_config, args.seed)})


ADAPTIVE_COLUMNS = ["index", "label", "clean_prediction", "autoattack_prediction", "adaptive_prediction",
                    "prediction", "correct", "correct_autoattack", "correct_adaptive", "perturbation",
                    "alpha_clean", "alpha_adaptive", "gamma_clean", "gamma_adaptive", "adaptive_w",
                    "adaptive_by", "standing_before_transfer"]


def cmd_adaptive(args: argparse.Namespace) -> None:
    device = runtime(args)
    splits = data_mod.load(args.data)
    threat = threat_from(args.threat, splits.bounds)
    model = load_classifier(args.classifier, device)
    if not isinstance(model, MixedClassifier) or model.net is None:
        raise SystemExit(f"{args.classifier} is not a mixing-network classifier")
    spec = load_spec(args.classifier)
    aa, aa_meta = read_records(args.autoattack)
    if aa_meta.get("classifier_sha256") != spec["sha256"]:
        raise ArtifactError(f"{args.autoattack}: made for another version of {args.classifier}")
    x, y = splits.x("test"), splits.y("test")
    if len(aa) != y.shape[0] or not np.array_equal(aa["label"].to_numpy(), y.numpy()):
        raise ArtifactError(f"{args.autoattack}: its points are not this test split")
    aa_pred = torch.tensor(aa["prediction"].to_numpy())
    aa_size = torch.tensor(aa["perturbation"].to_numpy(), dtype=torch.float32)
    p = args.params
    suite = CompositeSuite.from_mapping(args.suite)
    sink = ResumableCSV(args.out, ADAPTIVE_COLUMNS)
    done = {int(i) for i in sink.done_keys("index")}
    if done:
        log.info("resuming: %d of %d points already attacked", len(done), y.shape[0])
    for start in range(0, y.shape[0], args.batch_size):
        idx = list(range(start, min(start + args.batch_size, y.shape[0])))
        if all(i in done for i in idx):
            continue
        # One generator per chunk, seeded from (seed, chunk): a resumed run attacks exactly as a fresh one.
        gen = torch.Generator(device="cpu").manual_seed(int(np.random.SeedSequence([args.seed, start])
                                                            .generate_state(1)[0]))
        xb, yb = x[idx].to(device), y[idx].to(device)
        with torch.no_grad():
            clean = model.forward_all(xb)
        ws = p["w"] if isinstance(p["w"], list) else [p["w"]]
        x_adv, broken_by = mixnet_worst_case(
            model, xb, yb, threat, ws, steps=int(p["steps"]), step_rel=float(p["step_rel"]),
            restarts=int(p["restarts"]), momentum=float(p.get("momentum", 0.0)), loss=str(p.get("loss", "ce")),
            schedule=str(p.get("schedule", "cosine")), generator=gen if device.type == "cpu" else None)
        by = [f"w={ws[int(k)]:g}" if k >= 0 else "" for k in broken_by.tolist()]
        with torch.no_grad():
            standing = (model(x_adv).argmax(1) == yb) & (clean.out.argmax(1) == yb)
        standing &= torch.tensor([aa_pred[i] == y[i] for i in idx], device=standing.device)
        before = standing.clone()  # standing when the transfer runs start (white-box attacks all done)
        todo = torch.nonzero(standing).flatten()
        if suite.active and len(todo):  # targeted margin runs and transfer, on the points still standing
            extra = composite_suite(model, {"accurate": model.g, "robust": model.h}, xb[todo], yb[todo], threat,
                                    suite, generator=gen if device.type == "cpu" else None)
            for j in torch.nonzero(extra.fooled).flatten().tolist():
                x_adv[int(todo[j])] = extra.x_adv[j].to(x_adv.device)
                by[int(todo[j])] = extra.path[j]
                before[int(todo[j])] = bool(extra.fooled_by_transfer[j])
        with torch.no_grad():
            adv = model.forward_all(x_adv)
        clean_pred, adv_pred = clean.out.argmax(1).cpu(), adv.out.argmax(1).cpu()
        adv_pred = torch.where(clean_pred == yb.cpu(), adv_pred, clean_pred)  # clean errors stay errors
        size = perturbation_size(xb, x_adv, threat.norm).cpu()
        for j, i in enumerate(idx):
            if i in done:  # a chunk cut short is attacked again whole (same draws); its done rows are kept
                continue
            ok_aa, ok_ad = int(aa_pred[i] == y[i]), int(adv_pred[j] == y[i])
            worst = aa_pred[i] if not ok_aa else adv_pred[j]
            sink.append({
                "index": i, "label": int(y[i]), "clean_prediction": int(clean_pred[j]),
                "autoattack_prediction": int(aa_pred[i]), "adaptive_prediction": int(adv_pred[j]),
                "prediction": int(worst), "correct": ok_aa * ok_ad, "correct_autoattack": ok_aa,
                "correct_adaptive": ok_ad, "perturbation": float(aa_size[i] if not ok_aa else size[j]),
                "alpha_clean": float(clean.alpha[j]), "alpha_adaptive": float(adv.alpha[j]),
                "gamma_clean": float(clean.gamma[j]), "gamma_adaptive": float(adv.gamma[j]),
                "adaptive_w": float(ws[int(broken_by[j])]) if broken_by[j] >= 0 and clean_pred[j] == y[i] else "",
                "adaptive_by": by[j] if clean_pred[j] == y[i] and ok_ad == 0 else "",
                "standing_before_transfer": int(before[j]),
            })
        log.info("attacked points %d..%d", idx[0], idx[-1])
    rows = sorted(sink.rows, key=lambda r: int(r["index"]))
    n = len(rows)

    def mean(col: str) -> float:
        return sum(float(r[col]) for r in rows) / n

    metrics = (("accuracy", "correct"), ("accuracy_autoattack", "correct_autoattack"),
               ("accuracy_adaptive_only", "correct_adaptive"), ("mean_alpha_clean", "alpha_clean"),
               ("mean_alpha_attacked", "alpha_adaptive"), ("accuracy_before_transfer", "standing_before_transfer"))
    summary = [summary_row(splits.name, args.name, "adaptive", threat, m, mean(col), n) for m, col in metrics]
    meta = {
        "attack": "adaptive", "norm": threat.norm, "eps": threat.eps, "params": dict(p),
        "dataset": splits.name, "classifier": args.name, "classifier_sha256": spec["sha256"],
        "alpha_range": [spec["network"]["alpha_min"], spec["network"]["alpha_max"]],
        "autoattack_record": str(args.autoattack), "autoattack_flags": aa_meta.get("flags", {}),
        "autoattack_warnings": aa_meta.get("warnings", []),
        "autoattack_accuracy_by_attack": aa_meta.get("accuracy_by_attack", {}),
        "adaptive_beats_autoattack": int(sum(int(r["correct_autoattack"]) - int(r["correct"]) for r in rows)),
        "suite": dict(args.suite), "adaptive_by": _counts(r["adaptive_by"] for r in rows),
        "summary_rows": summary,
        **provenance({"attack": "adaptive", "threat": args.threat, "params": p}, args.seed),
    }
    sink.finalize(meta, sort_key="index")
    log.info("%s / adaptive: accuracy %.4f (AutoAttack alone %.4f, adaptive attack alone %.4f), mean α clean %.3f → "
             "attacked %.3f", args.name, *(r["value"] for r in summary[:5]))


def _counts(values: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        if v:
            out[str(v)] = out.get(str(v), 0) + 1
    return out


MARGIN_COLUMNS = ["index", "label", "clean_prediction", "clean_margin", "clean_correct", "adv_prediction",
                  "adv_margin", "adv_correct", "perturbation"]


def cmd_margins(args: argparse.Namespace) -> None:
    device = runtime(args)
    splits = data_mod.load(args.data)
    threat = threat_from(args.threat, splits.bounds)
    model = load_classifier(args.classifier, device)
    x, y = splits.x("test"), splits.y("test")
    p = args.params
    steps = int(p.get("steps", 20))
    gen = torch.Generator(device="cpu").manual_seed(args.seed)
    rows: list[dict[str, Any]] = []
    for start in range(0, y.shape[0], args.batch_size):
        xb, yb = x[start:start + args.batch_size].to(device), y[start:start + args.batch_size].to(device)
        with torch.no_grad():
            c_pred, c_margin = probability_margin(model(xb), args.temp)
        step = float(p.get("step_rel", 2.5 / steps)) * threat.eps
        x_adv = attack_model(model, xb, yb, threat, steps=steps, step_size=step,
                             restarts=int(p.get("restarts", 1)), loss=str(p.get("loss", "ce")),
                             generator=gen if device.type == "cpu" else None)
        keep = (c_pred == yb).view(-1, *([1] * (xb.ndim - 1)))
        x_adv = torch.where(keep, x_adv, xb)  # only clean-correct points are attacked
        with torch.no_grad():
            a_pred, a_margin = probability_margin(model(x_adv), args.temp)
        size = perturbation_size(xb, x_adv, threat.norm).cpu()
        for j in range(xb.shape[0]):
            rows.append({"index": start + j, "label": int(yb[j]), "clean_prediction": int(c_pred[j]),
                         "clean_margin": float(c_margin[j]), "clean_correct": int(c_pred[j] == yb[j]),
                         "adv_prediction": int(a_pred[j]), "adv_margin": float(a_margin[j]),
                         "adv_correct": int(a_pred[j] == yb[j]), "perturbation": float(size[j])})
    right_adv = [r["adv_margin"] for r in rows if r["adv_correct"]]
    wrong_clean = [r["clean_margin"] for r in rows if not r["clean_correct"]]
    summary = [
        summary_row(splits.name, args.name, "margin", threat, "mean_margin_correct_attacked",
                    float(np.mean(right_adv)) if right_adv else float("nan"), len(right_adv)),
        summary_row(splits.name, args.name, "margin", threat, "mean_margin_wrong_clean",
                    float(np.mean(wrong_clean)) if wrong_clean else float("nan"), len(wrong_clean)),
    ]
    write_records(args.out, rows, {
        "attack": "pgd", "norm": threat.norm, "eps": threat.eps, "params": dict(p), "temp": args.temp,
        "dataset": splits.name, "classifier": args.name,
        "classifier_sha256": load_spec(args.classifier).get("sha256"), "summary_rows": summary,
        **provenance({"threat": args.threat, "params": p, "temp": args.temp}, args.seed),
    }, columns=MARGIN_COLUMNS)
    log.info("%s: mean probability margin %.3f on %d correct-under-attack points, %.3f on %d wrong-clean",
             args.name, summary[0]["value"], summary[0]["n"], summary[1]["value"], summary[1]["n"])
