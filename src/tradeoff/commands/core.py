"""Core stages: data preparation, base-model training, attack evaluation, the summary table."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from ..errors import TradeoffError
from ..io import provenance, read_json, read_records, write_json, write_records
from ..io import sidecar as sidecar_of
from ..records import ATTACKS, RECORD_COLUMNS, SWEEP_COLUMNS, accuracy_rows, evaluation_rows
from .common import add_runtime_args, json_arg, runtime, threat_from

log = logging.getLogger("tradeoff")


def register(sub: argparse._SubParsersAction) -> None:
    register_env(sub)
    p = sub.add_parser("prepare-data", help="build a dataset's fixed splits")
    p.add_argument("--dataset", required=True, help="digits | tsipras | gauss3 | mnist | cifar10 | cifar100")
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

    p = sub.add_parser("evaluate", help="per-sample evaluations of classifiers at one threat, batch by batch")
    add_runtime_args(p)
    p.add_argument("--data", required=True)
    p.add_argument("--classifier", nargs="+", required=True, help="classifier JSON(s), evaluated in turn")
    p.add_argument("--name", nargs="+", required=True, help="classifier id(s) for the summary, one per JSON")
    p.add_argument("--out-dir", nargs="+", required=True,
                   help="one folder per classifier: <attack>.csv for each evaluation (or, with --shards > 1, "
                        "shards/<k>-of-<n>.csv)")
    p.add_argument("--attacks", nargs="+", required=True, choices=list(ATTACKS),
                   help="evaluations in the order they run (AutoAttack attacks what earlier attacks left)")
    p.add_argument("--threat", type=json_arg, required=True)
    p.add_argument("--params", type=json_arg, default={}, help="{evaluation: parameters} (JSON)")
    p.add_argument("--batch-size", type=int, default=500,
                   help="points per batch; the unit of seeding, sharding and resuming (results depend on it)")
    p.add_argument("--shard", type=int, default=0)
    p.add_argument("--shards", type=int, default=1)
    p.add_argument("--stop-after", type=int, default=None, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("evaluate-merge", help="merge an evaluation's shards into its per-evaluation records")
    p.add_argument("--name", required=True, help="classifier id for the summary")
    p.add_argument("--attacks", nargs="+", required=True, choices=list(ATTACKS))
    p.add_argument("--threat", type=json_arg, required=True)
    p.add_argument("--params", type=json_arg, default={})
    p.add_argument("--out-dir", required=True, help="the classifier's folder (writes <attack>.csv)")
    p.add_argument("shards", nargs="+", help="the shard records")
    p.set_defaults(func=cmd_evaluate_merge)

    p = sub.add_parser("worst", help="per-point worst case over several attacks' records of one classifier")
    p.add_argument("--name", required=True, help="classifier id for the summary")
    p.add_argument("--threat", type=json_arg, required=True, help="the threat every input must have been run at")
    p.add_argument("--out", required=True)
    p.add_argument("inputs", nargs="+", help="record CSVs (evaluate, adaptive-eval, era-composite, robustness); "
                                             "a point's breaking attack is the first in this order")
    p.set_defaults(func=cmd_worst)

    p = sub.add_parser("sanity", help="masked-gradient sanity checks on a summary table (Carlini et al. 2019)")
    p.add_argument("--summary", required=True, help="summary.csv (dataset, classifier, evaluation, norm, eps, ...)")
    p.add_argument("--params", type=json_arg, default={}, help="alpha, zero_tol, large_eps, blackbox_tol, "
                   "monotone_evaluations, stronger ([[weaker, stronger], ...])")
    p.add_argument("--out", required=True, help="one row per check and classifier: passed, reason")
    p.set_defaults(func=cmd_sanity)

    p = sub.add_parser("summarize", help="concatenate the summary rows of per-sample records")
    p.add_argument("--out", required=True)
    p.add_argument("inputs", nargs="+", help="record CSVs (their JSON sidecars hold the summary rows)")
    p.set_defaults(func=cmd_summarize)


def cmd_prepare_data(args: argparse.Namespace) -> None:
    from .. import data as data_mod

    if args.dataset not in data_mod.DATASETS:
        raise TradeoffError(f"unknown dataset '{args.dataset}' (known: {', '.join(data_mod.DATASETS)})")
    splits = data_mod.prepare(args.dataset, args.params, args.seed, args.out,
                              provenance({"dataset": args.dataset, **args.params}, args.seed))
    log.info("%s: %s", args.dataset, {s: splits.size(s) for s in data_mod.SPLITS})


def cmd_train(args: argparse.Namespace) -> None:
    import torch

    from .. import data as data_mod
    from ..classifiers import load_classifier, weights_path
    from ..evaluate import predict
    from ..io import save_torch
    from ..models import build_model
    from ..objectives import build_objective
    from ..train import TrainConfig, fingerprint, train

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


def progress_path(out_dir: str | Path, attacks: list[str], shard: int, shards: int) -> Path:
    """Where an evaluation job running ``attacks`` keeps its progress: with ``shards`` > 1 the shard's
    records ``shards/<attacks joined by +>-<shard>-of-<shards>.csv``, else a ``.partial`` file next to the
    per-evaluation records (gone once they are written)."""
    group = "+".join(attacks)
    if shards > 1:
        return Path(out_dir) / "shards" / f"{group}-{shard}-of-{shards}.csv"
    return Path(out_dir) / f"progress-{group}.csv"


def write_evaluations(out_dir: str | Path, dataset: str, name: str, threat: Any, rows: list[dict[str, Any]],
                      metas: list[dict[str, Any]], attacks: list[str], params: dict[str, Any],
                      context: dict[str, Any], seed: int | None) -> None:
    """Write ``<out_dir>/<attack>.csv`` (and its sidecar with the summary rows) for every evaluation."""
    from ..records import suite_results

    for attack, (records, meta) in suite_results(rows, metas, attacks, threat, params).items():
        summary = evaluation_rows(dataset, name, attack, threat, records, meta)
        write_records(Path(out_dir) / f"{attack}.csv", records, {
            **meta, "dataset": dataset, "classifier": name, "summary_rows": summary, **context,
            **provenance({"attack": attack, "threat": {"norm": threat.norm, "eps": threat.eps},
                          "params": params.get(attack, {})}, seed),
        }, columns=SWEEP_COLUMNS if attack == "eps-sweep" else RECORD_COLUMNS)
        log.info("%s / %s: accuracy %.4f on %d points", name, attack, summary[0]["value"], summary[0]["n"])


def cmd_evaluate(args: argparse.Namespace) -> None:
    from .. import data as data_mod
    from ..classifiers import load_classifier, load_spec
    from ..evaluate import batch_starts, evaluate_batches
    from ..io import ResumableCSV
    from ..records import PROGRESS_COLUMNS, batch_metas
    from ..train import fingerprint

    if not len(args.classifier) == len(args.name) == len(args.out_dir):
        raise TradeoffError("evaluate: --classifier, --name and --out-dir need one value per classifier each")
    device = runtime(args)
    splits = data_mod.load(args.data)
    threat = threat_from(args.threat, splits.bounds)
    x, y = splits.x("test"), splits.y("test")
    starts = batch_starts(x.shape[0], args.batch_size, args.shard, args.shards)
    params = {a: args.params.get(a, {}) for a in args.attacks}
    for spec_path, name, out_dir in zip(args.classifier, args.name, args.out_dir, strict=True):
        spec = load_spec(spec_path)
        run = {"classifier_sha256": spec.get("sha256"), "data_sha256": splits.meta.get("sha256"),
               "attacks": args.attacks, "threat": args.threat, "params": params, "seed": args.seed,
               "batch_size": args.batch_size, "shard": args.shard, "shards": args.shards}
        sharded = args.shards > 1
        progress = ResumableCSV(progress_path(out_dir, args.attacks, args.shard, args.shards), PROGRESS_COLUMNS,
                                key=fingerprint(run))
        model = load_classifier(spec_path, device)
        left = evaluate_batches(model, x, y, args.attacks, threat, params, args.seed, device, args.batch_size,
                                starts, progress, stop_after=args.stop_after, label=f"{name}: ")
        if left:
            progress.close()
            log.info("%s: stopped with %d batches to do as asked; progress kept in %s", name, left,
                     progress.partial)
            return
        context = {"classifier_sha256": spec.get("sha256"), "batch_size": args.batch_size}
        if sharded:
            progress.finalize({"dataset": splits.name, "classifier": name, **run, **context,
                               **provenance(run, args.seed)}, sort_key="batch")
        else:
            write_evaluations(out_dir, splits.name, name, threat, progress.rows, batch_metas(progress.rows),
                              args.attacks, params, context, args.seed)
            progress.discard()


def cmd_evaluate_merge(args: argparse.Namespace) -> None:
    from ..records import batch_metas

    threat = threat_from(args.threat, None)
    rows: list[dict[str, Any]] = []
    metas: list[dict[str, Any]] = []
    ref: dict[str, Any] | None = None
    for path in args.shards:
        frame, meta = read_records(path)
        if ref is None:
            ref = meta
        for key in ("classifier_sha256", "data_sha256", "attacks", "threat", "params", "seed", "batch_size",
                    "shards"):
            if meta.get(key) != ref.get(key):
                raise TradeoffError(f"{path}: {key} differs from {args.shards[0]}'s: shards of different runs")
        part = frame.astype(object).where(frame.notna(), "").to_dict("records")  # empty cells: ""
        rows += part
        metas += batch_metas(part)
    assert ref is not None
    shards = sorted(int(read_json(sidecar_of(p))["shard"]) for p in args.shards)
    if shards != list(range(int(ref["shards"]))):
        raise TradeoffError(f"evaluate-merge: shards {shards} given, need 0..{int(ref['shards']) - 1}")
    write_evaluations(args.out_dir, str(ref["dataset"]), args.name, threat, rows, metas, list(args.attacks),
                      {a: args.params.get(a, {}) for a in args.attacks},
                      {"classifier_sha256": ref.get("classifier_sha256"), "batch_size": ref.get("batch_size"),
                       "shards": int(ref["shards"])}, ref.get("seed"))


def merge_inputs(path: str, threat: Any) -> tuple[str, list[dict[str, Any]], dict[str, Any]]:
    """(attack name, per-point records in the evaluate layout, sidecar) of one record file for
    :func:`~tradeoff.attacks.worst.worst_case`. Records with a ``robust_accurate`` column (robustness
    records, the ERA composite's) count a point as correct only when robust and accurate. Exits with one
    line naming ``path`` when its threat differs from ``threat`` or it is not a per-point attack record."""
    import math

    frame, meta = read_records(path)
    if meta.get("attack") == "eps-sweep":
        raise TradeoffError(f"{path}: an ε-sweep has one block per budget; merge single-threat records only")
    if meta.get("norm") != threat.norm or not math.isclose(float(meta.get("eps", math.nan)), threat.eps):
        raise TradeoffError(f"{path}: threat {meta.get('norm')} ε={meta.get('eps')} differs from {threat.norm} "
                         f"ε={threat.eps}")
    cols = set(frame.columns)
    if "robust_accurate" in cols:
        clean = frame["clean_prediction"] if "clean_prediction" in cols else frame["prediction"]
        frame = frame.assign(clean_prediction=clean, correct=frame["robust_accurate"],
                             prediction=frame["adv_prediction"].where(frame["robust_accurate"] == 0, clean))
    missing = set(RECORD_COLUMNS) - set(frame.columns)
    if missing:
        raise TradeoffError(f"{path}: not a per-point attack record (no {', '.join(sorted(missing))})")
    name = str(meta.get("attack") or Path(path).stem)
    return name, frame[RECORD_COLUMNS].to_dict("records"), meta


def cmd_worst(args: argparse.Namespace) -> None:
    from ..attacks.worst import WORST_COLUMNS, RecordMismatch, broken_by_counts, worst_case

    threat = threat_from(args.threat, None)
    merged: list[tuple[str, list[dict[str, Any]]]] = []
    metas: list[dict[str, Any]] = []
    for path in args.inputs:
        name, recs, meta = merge_inputs(path, threat)
        if name in {m for m, _ in merged}:
            name = f"{name}:{Path(path).stem}"
        if metas and meta.get("dataset") != metas[0].get("dataset"):
            raise TradeoffError(f"{path}: dataset {meta.get('dataset')} differs from {metas[0].get('dataset')}")
        sha, ref_sha = meta.get("classifier_sha256"), metas[0].get("classifier_sha256") if metas else None
        if sha is not None and ref_sha is not None and sha != ref_sha:
            raise TradeoffError(f"{path}: made for another classifier than {args.inputs[0]} (classifier_sha256)")
        merged.append((name, recs))
        metas.append(meta)
    try:
        records = worst_case(merged)
    except RecordMismatch as exc:
        bad = next((p for (n, _), p in zip(merged, args.inputs, strict=True) if str(exc).startswith(f"{n}:")),
                   args.inputs[0])
        raise TradeoffError(f"{bad}: {exc}") from None
    dataset = str(metas[0].get("dataset", ""))
    rows = accuracy_rows(dataset, args.name, "worst", threat, records)
    counts = broken_by_counts(records)
    write_records(args.out, records, {
        "attack": "worst", "norm": threat.norm, "eps": threat.eps, "dataset": dataset, "classifier": args.name,
        "attacks": [n for n, _ in merged], "inputs": list(args.inputs), "broken_by": counts,
        "accuracy_by_attack": {n: sum(int(r["correct"]) for r in recs) / max(1, len(recs)) for n, recs in merged},
        "classifier_sha256": metas[0].get("classifier_sha256"), "summary_rows": rows,
        **provenance({"attack": "worst", "threat": args.threat, "inputs": list(args.inputs)}, None),
    }, columns=WORST_COLUMNS)
    log.info("%s / worst: accuracy %.4f on %d points; broken by %s", args.name, rows[0]["value"], rows[0]["n"],
             counts)


def cmd_sanity(args: argparse.Namespace) -> None:
    import pandas as pd

    from ..attacks.sanity import CHECK_COLUMNS, sanity_checks

    p = dict(args.params)
    if "stronger" in p:
        p["stronger"] = [tuple(pair) for pair in p["stronger"]]
    checks = sanity_checks(pd.read_csv(args.summary).to_dict("records"), **p)
    failed = [c for c in checks if not c.passed]
    write_records(args.out, [c.row() for c in checks], {
        "summary": str(args.summary), "params": args.params, "n_checks": len(checks), "n_failed": len(failed),
        **provenance({"params": args.params}, None)}, columns=CHECK_COLUMNS)
    for c in failed:
        log.warning("sanity check failed: %s / %s: %s", c.classifier, c.check, c.reason)
    log.info("%d sanity checks, %d failed -> %s", len(checks), len(failed), args.out)


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
