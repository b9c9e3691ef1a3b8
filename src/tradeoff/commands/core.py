"""Core stages: data preparation, base-model training, attack evaluation, the summary table."""

from __future__ import annotations

import argparse
import logging
from typing import Any

import torch

from .. import data as data_mod
from ..classifiers import load_classifier, load_spec, weights_path
from ..evaluate import RECORD_COLUMNS, accuracy_rows, attack_meta, clean_records, predict, run_attack
from ..io import provenance, read_json, read_records, save_torch, write_json, write_records
from ..models import build_model
from ..objectives import build_objective
from ..train import TrainConfig, fingerprint, train
from .common import add_runtime_args, json_arg, runtime, threat_from

log = logging.getLogger("tradeoff")


def register(sub: argparse._SubParsersAction) -> None:
    register_env(sub)
    p = sub.add_parser("prepare-data", help="build a dataset's fixed splits")
    p.add_argument("--dataset", required=True, choices=data_mod.DATASETS)
    p.add_argument("--params", type=json_arg, required=True, help="the dataset's config section (JSON)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
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

    p = sub.add_parser("evaluate", help="per-sample evaluation of a classifier under an attack")
    add_runtime_args(p)
    p.add_argument("--data", required=True)
    p.add_argument("--classifier", required=True, help="classifier JSON")
    p.add_argument("--name", required=True, help="classifier id for the summary")
    p.add_argument("--attack", required=True, choices=["clean", "pgd", "autoattack"])
    p.add_argument("--threat", type=json_arg, required=True)
    p.add_argument("--params", type=json_arg, default={})
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--out", required=True)
    p.add_argument("--clean-out", default=None,
                   help="also write the clean evaluation's records here (read off this attack's clean predictions)")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("summarize", help="concatenate the summary rows of per-sample records")
    p.add_argument("--out", required=True)
    p.add_argument("inputs", nargs="+", help="record CSVs (their JSON sidecars hold the summary rows)")
    p.set_defaults(func=cmd_summarize)


def cmd_prepare_data(args: argparse.Namespace) -> None:
    splits = data_mod.prepare(args.dataset, args.params, args.seed, args.out,
                              provenance({"dataset": args.dataset, **args.params}, args.seed))
    log.info("%s: %s", args.dataset, {s: splits.size(s) for s in data_mod.SPLITS})


def cmd_train(args: argparse.Namespace) -> None:
    device = runtime(args)
    splits = data_mod.load(args.data)
    threat = threat_from(args.threat, splits.bounds)
    cfg = TrainConfig.from_mapping({**args.train_params, "seed": args.seed})
    torch.manual_seed(args.seed)  # the initial weights come from the config's seed too
    model = build_model(args.arch, splits.name, splits.num_classes, splits.input_shape, args.arch_options)
    if args.init:
        init = load_classifier(args.init)
        model.load_state_dict(init.state_dict())
        for p in model.parameters():
            p.requires_grad_(True)
        log.info("fine-tuning from %s", args.init)
    objective = build_objective(args.objective, args.objective_params, threat)
    run_config = {
        "name": args.name, "arch": args.arch, "arch_options": args.arch_options, "objective": args.objective,
        "objective_params": args.objective_params, "threat": args.threat, "train": vars(cfg),
        "data_sha256": splits.meta["sha256"], "init": None if not args.init else read_json(args.init)["sha256"],
    }
    x_val, y_val = splits.x("calib"), splits.y("calib")

    def monitor(m: torch.nn.Module) -> dict[str, float]:
        pred = predict(m, x_val, device=device)
        return {"calib_acc": float((pred == y_val).float().mean())}

    history = train(model, objective, splits.x("train"), splits.y("train"), cfg, args.checkpoint,
                    fingerprint(run_config), device, evaluate=monitor, progress=not args.no_progress,
                    stop_after_epoch=args.stop_after_epoch)
    if args.stop_after_epoch is not None and len(history) < cfg.epochs:
        log.info("stopped after epoch %d as asked; no final model written", args.stop_after_epoch)
        return
    model.cpu()
    digest = save_torch(model.state_dict(), weights_path(args.out))
    write_json(args.out, {
        "kind": "base", "name": args.name, "dataset": splits.name, "arch": args.arch,
        "arch_options": args.arch_options, "num_classes": splits.num_classes,
        "input_shape": list(splits.input_shape), "objective": args.objective, "sha256": digest,
        "history": history, **provenance(run_config, args.seed),
    })


def cmd_evaluate(args: argparse.Namespace) -> None:
    device = runtime(args)
    splits = data_mod.load(args.data)
    threat = threat_from(args.threat, splits.bounds)
    model = load_classifier(args.classifier, device)
    x, y = splits.x("test"), splits.y("test")
    records, meta = run_attack(model, x, y, args.attack, threat, args.params, args.seed, device, args.batch_size)
    spec = load_spec(args.classifier)

    def write(out: str, attack: str, records: list[dict[str, Any]], meta: dict[str, Any], params: Any) -> None:
        rows = accuracy_rows(splits.name, args.name, attack, None if attack == "clean" else threat, records)
        write_records(out, records, {
            **meta, "dataset": splits.name, "classifier": args.name, "summary_rows": rows,
            "classifier_sha256": spec.get("sha256"),
            **provenance({"attack": attack, "threat": args.threat, "params": params}, args.seed),
        }, columns=RECORD_COLUMNS)
        log.info("%s / %s: accuracy %.4f on %d points", args.name, attack, rows[0]["value"], rows[0]["n"])

    write(args.out, args.attack, records, meta, args.params)
    if args.clean_out:
        write(args.clean_out, "clean", clean_records(records), attack_meta("clean", threat, {}), {})


SUMMARY_COLUMNS = ["dataset", "classifier", "evaluation", "norm", "eps", "metric", "value", "n"]


def collect_rows(inputs: list[str]) -> list[dict[str, Any]]:
    """Summary rows from the sidecars of ``inputs``; each record is verified against its sidecar's checksum
    and row count first, so a truncated or edited record stops the table with its name."""
    rows: list[dict[str, Any]] = []
    for path in inputs:
        _, meta = read_records(path)
        rows.extend(meta.get("summary_rows", []))
    return rows


def cmd_summarize(args: argparse.Namespace) -> None:
    import pandas as pd

    from ..io import write_text

    frame = pd.DataFrame(collect_rows(args.inputs), columns=SUMMARY_COLUMNS)
    frame = frame.sort_values(["dataset", "classifier", "evaluation", "metric", "eps"], kind="stable")
    write_text(args.out, frame.to_csv(index=False, float_format="%.6g", lineterminator="\n"))
    log.info("%d summary rows -> %s", len(frame), args.out)


def register_env(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("check-env", help="log torch/CUDA versions and devices; fail if a requested GPU is missing")
    add_runtime_args(p)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_check_env)


def cmd_check_env(args: argparse.Namespace) -> None:
    import os

    from ..device import environment_report

    device = runtime(args)
    report = {**environment_report(), "device": str(device), "gpus_requested": args.gpus,
              "slurm_job_id": os.environ.get("SLURM_JOB_ID"), "hostname": os.uname().nodename}
    log.info("environment: %s", report)
    write_json(args.out, report)
