"""Certification stage: ``certify-shard`` (Cohen et al.'s CERTIFY on one shard of the test points,
resumable) and ``certify-merge`` (per-sample records and summary rows of randomized smoothing and of the
mixed classifier's certificates)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import data as data_mod
from ..certify.runner import (
    MIXED_COLUMNS,
    RS_COLUMNS,
    SHARD_COLUMNS,
    STREAM,
    certify_shard,
    load_shard_rows,
    mixed_records,
    mixed_summary_rows,
    rs_records,
    rs_summary_rows,
    select_points,
    shard_points,
)
from ..classifiers import load_classifier, load_spec
from ..io import ArtifactError, ResumableCSV, provenance, write_records, write_text
from ..train import fingerprint
from .common import add_runtime_args, json_arg, runtime

log = logging.getLogger("tradeoff")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("certify-shard", help="randomized-smoothing CERTIFY on one shard of the test points")
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

    p = sub.add_parser("certify-merge", help="merge certification shards: Cohen and mixed-classifier records")
    add_runtime_args(p)
    p.add_argument("--data", required=True)
    p.add_argument("--name", required=True, help="id of the smoothed classifier (e.g. gauss_aug-0.25)")
    p.add_argument("--standard", required=True, help="JSON of the standard model g of the mixed classifier")
    p.add_argument("--sigma", type=float, required=True)
    p.add_argument("--params", type=json_arg, required=True,
                   help='{"n0", "n", "alpha", "points", "radii", "mix_alphas"} (the certify config section)')
    p.add_argument("--out-rs", required=True)
    p.add_argument("--out-mixed", required=True)
    p.add_argument("shard_records", nargs="+", help="the shard CSVs")
    p.set_defaults(func=cmd_certify_merge)


def _progress(total: int, enabled: bool) -> Any:
    """A callback (done, todo) that logs every ~10% and drives a tqdm bar when enabled."""
    bar = None
    if enabled:
        from tqdm import tqdm

        bar = tqdm(total=total, unit="pt")
    step = max(1, total // 10)

    def update(done: int, todo: int) -> None:
        if bar is not None:
            bar.update(1)
        if done % step == 0 or done == todo:
            log.info("certified %d / %d points", done, todo)

    return update


def cmd_certify_shard(args: argparse.Namespace) -> None:
    device = runtime(args)
    params = args.params
    splits = data_mod.load(args.data)
    x, y = splits.x("test"), splits.y("test")
    indices = shard_points(select_points(splits.size("test"), params.get("points"), args.seed),
                           args.shard, args.shards)
    spec = load_spec(args.classifier)
    model = load_classifier(args.classifier, device)
    run = {"classifier_sha256": spec.get("sha256"), "data_sha256": splits.meta["sha256"], "sigma": args.sigma,
           "n0": int(params["n0"]), "n": int(params["n"]), "alpha": float(params["alpha"]), "seed": args.seed,
           "stream": STREAM, "indices": [int(i) for i in indices]}
    out = Path(args.out)
    # A progress file made with other settings (or another model) must not be resumed: its key differs.
    # The batch size is not part of the key: results do not depend on it.
    key_path = out.with_name(out.name + ".partial.key")
    partial = out.with_name(out.name + ".partial")
    key = fingerprint(run)
    if partial.exists() and (not key_path.exists() or key_path.read_text().strip() != key):
        log.warning("%s: progress made with other settings; starting over", partial)
        partial.unlink()
    write_text(key_path, key + "\n")
    records = ResumableCSV(out, SHARD_COLUMNS)
    done = {int(k) for k in records.done_keys("index")}
    todo = [int(i) for i in indices if int(i) not in done]
    if done:
        log.info("resuming: %d of %d points already certified", len(indices) - len(todo), len(indices))
    if args.stop_after is not None:
        todo = todo[: args.stop_after]
    log.info("shard %d/%d: %d points, sigma=%g, n0=%d, n=%d, alpha=%g", args.shard, args.shards,
             len(indices), args.sigma, run["n0"], run["n"], run["alpha"])
    certify_shard(model, x, y, todo, num_classes=splits.num_classes, sigma=args.sigma, n0=run["n0"],
                  n=run["n"], alpha=run["alpha"], seed=args.seed, batch_size=int(params["batch_size"]),
                  out=records, device=device,
                  progress=_progress(len(todo), not args.no_progress))
    if len(records.rows) < len(indices):
        records.close()
        log.info("stopped after %d of %d points as asked; progress kept in %s", len(records.rows),
                 len(indices), partial)
        return
    records.finalize({"dataset": splits.name, "shard": args.shard, "shards": args.shards, **run,
                      **provenance({"sigma": args.sigma, **params}, args.seed)}, sort_key="index")
    key_path.unlink(missing_ok=True)
    seconds = sum(float(r["seconds"]) for r in records.rows)
    samples = sum(int(r["samples"]) for r in records.rows)
    log.info("shard done: %d points, %.1f s of sampling, %.0f noisy samples/s", len(records.rows), seconds,
             samples / seconds if seconds else float("nan"))


@torch.no_grad()
def _standard_probs(spec_path: str, x: torch.Tensor, indices: np.ndarray, device: torch.device,
                    batch_size: int = 500) -> dict[int, np.ndarray]:
    """softmax of the standard model's logits at the clean test points ``indices``."""
    model = load_classifier(spec_path, device)
    out: dict[int, np.ndarray] = {}
    for start in range(0, len(indices), batch_size):
        chunk = indices[start:start + batch_size]
        probs = torch.softmax(model(x[torch.as_tensor(chunk)].to(device)).double(), dim=1).cpu().numpy()
        out.update({int(i): p for i, p in zip(chunk, probs, strict=True)})
    return out


def cmd_certify_merge(args: argparse.Namespace) -> None:
    device = runtime(args)
    params = args.params
    splits = data_mod.load(args.data)
    expected = select_points(splits.size("test"), params.get("points"), args.seed)
    rows, settings = load_shard_rows(args.shard_records)
    got = sorted(int(r["index"]) for r in rows)
    if got != [int(i) for i in expected]:
        raise SystemExit(f"shards cover {len(got)} points, expected the {len(expected)} selected test points")
    alpha, radii = float(params["alpha"]), [float(r) for r in params["radii"]]
    # the certificates below are only valid for the sigma the noise was drawn with
    ours = {"sigma": args.sigma, "alpha": alpha, "seed": args.seed, "n0": params.get("n0"), "n": params.get("n")}
    wrong = sorted(k for k, v in ours.items() if v is not None and settings.get(k) != v)
    if wrong:
        raise ArtifactError(f"{args.shard_records[0]}: shards were made with other {', '.join(wrong)} "
                            f"({', '.join(f'{k}={settings.get(k)}' for k in wrong)})")
    rs = rs_records(rows)
    probs = _standard_probs(args.standard, splits.x("test"), expected, device)
    mixed = mixed_records(rows, probs, [float(a) for a in params["mix_alphas"]], args.sigma, alpha)
    base_meta = {
        "dataset": splits.name, "classifier": args.name, "sigma": args.sigma, "alpha": alpha,
        "points": f"{len(expected)} of {splits.size('test')} test points"
                  + ("" if len(expected) == splits.size("test") else f" (seeded subset, seed {args.seed})"),
        "shard_records": list(args.shard_records), "standard_sha256": load_spec(args.standard).get("sha256"),
        "shard_settings": settings,
        **provenance({"sigma": args.sigma, **params}, args.seed),
    }
    rs_rows = rs_summary_rows(splits.name, args.name, rs, radii)
    write_records(args.out_rs, rs, {**base_meta, "method": "cohen", "summary_rows": rs_rows}, RS_COLUMNS)
    mixed_rows = mixed_summary_rows(splits.name, args.name, mixed, radii)
    write_records(args.out_mixed, mixed, {**base_meta, "method": "mixed", "summary_rows": mixed_rows},
                  MIXED_COLUMNS)
    for row in rs_rows + mixed_rows:
        if row["metric"] in ("certified_accuracy", "clean_accuracy"):
            log.info("%s %s %s r=%g: %.4f (n=%d)", row["classifier"], row["evaluation"], row["metric"],
                     row["eps"], row["value"], row["n"])
