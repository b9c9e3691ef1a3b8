"""Probabilistic (eps, kappa) certification: ``certify-prob`` (one sampling pass over one shard) and
``certify-prob-merge`` (each test's decided records, metrics and summary rows)."""

from __future__ import annotations

import argparse
import logging
from dataclasses import asdict
from pathlib import Path

import pandas as pd

from .. import data as data_mod
from ..attacks.pgd import Threat
from ..certify.prob_records import (
    COLUMNS,
    RAW_COLUMNS,
    TESTS,
    ProbSettings,
    certify_points,
    check_settings,
    decide_records,
    summary_rows,
)
from ..classifiers import load_classifier, load_spec
from ..io import ArtifactError, ResumableCSV, provenance, read_records, write_records, write_text
from ..train import fingerprint
from .common import add_runtime_args, json_arg, runtime

log = logging.getLogger("tradeoff")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("certify-prob", help="(eps, kappa)-probabilistic certification: one sampling pass over a shard")
    add_runtime_args(p)
    p.add_argument("--data", required=True)
    p.add_argument("--classifier", required=True, help="classifier JSON")
    p.add_argument("--name", required=True, help="classifier id for the summary")
    p.add_argument("--tests", nargs="+", required=True, choices=TESTS,
                   help="tests the pass must allow deciding (with 'fixed' every point gets n_max samples)")
    p.add_argument("--settings", type=json_arg, required=True,
                   help="the config's probabilistic section (JSON): eps, norm, kappa, kappa_sweep, alpha, ...")
    p.add_argument("--shard", type=int, default=0, help="this shard's number, 0 ≤ shard < shards")
    p.add_argument("--shards", type=int, default=1, help="test point i goes to shard i mod shards")
    p.add_argument("--n-points", type=int, default=0, help="certify the first n test points (0 = all)")
    p.add_argument("--out", required=True, help="raw per-sample record CSV of this shard")
    p.set_defaults(func=cmd_certify_prob)

    p = sub.add_parser("certify-prob-merge",
                       help="merge sampling shards into each test's decided records, with metrics and summary rows")
    p.add_argument("--plan", type=json_arg, required=True,
                   help='JSON list, one item per classifier: {"shards": [raw CSVs], "pgd": PGD records or null, '
                        '"out": {"fixed": CSV, "sequential": CSV}}')
    p.set_defaults(func=cmd_merge)


def _shard_indices(n_points: int, shard: int, shards: int) -> list[int]:
    if not 0 <= shard < shards:
        raise SystemExit(f"--shard must lie in [0, {shards}), got {shard}")
    return list(range(shard, n_points, shards))


def cmd_certify_prob(args: argparse.Namespace) -> None:
    device = runtime(args)
    settings = ProbSettings.from_mapping(args.settings)
    try:
        check_settings(settings)
    except ValueError as exc:
        raise SystemExit(f"certify-prob: {exc}") from None
    tests = sorted(set(args.tests))
    splits = data_mod.load(args.data)
    x, y = splits.x("test"), splits.y("test")
    n_points = x.shape[0] if args.n_points <= 0 else min(args.n_points, x.shape[0])
    indices = _shard_indices(n_points, args.shard, args.shards)
    spec = load_spec(args.classifier)
    model = load_classifier(args.classifier, device)
    run = {"tests": tests, "settings": asdict(settings), "seed": args.seed, "n_points": n_points,
           "shard": args.shard, "shards": args.shards, "classifier_sha256": spec.get("sha256"),
           "data_sha256": splits.meta.get("sha256")}
    # A progress file is only resumed by the same run: a changed setting starts afresh.
    out = Path(args.out)
    partial = out.with_name(out.name + ".partial")
    stamp = out.with_name(out.name + ".partial.run")
    run_id = fingerprint(run)
    if partial.exists() and (not stamp.exists() or stamp.read_text().strip() != run_id):
        log.info("discarding %s: it belongs to another run", partial)
        partial.unlink()
    write_text(stamp, run_id + "\n")
    writer = ResumableCSV(out, RAW_COLUMNS)
    if writer.rows:
        log.info("resuming %s: %d of %d points already sampled", partial, len(writer.rows), len(indices))
    log.info("certify-prob %s on %s: %d points, %s", "+".join(tests), args.name, len(indices), settings)
    done = certify_points(model, x, y, indices, tests, settings, args.seed, writer, device,
                          progress=not args.no_progress)
    writer.finalize({"dataset": splits.name, "classifier": args.name, "run_id": run_id, **run,
                     **provenance({"probabilistic": args.settings, "tests": tests}, args.seed)},
                    sort_key="index")
    stamp.unlink(missing_ok=True)
    log.info("sampled %d points (%d resumed) -> %s", len(indices), len(indices) - done, out)


def merge_classifier(shards: list[str], pgd_path: str | None, outputs: dict[str, str]) -> None:
    """Join one classifier's shards and write each requested test's decided records + summary rows."""
    frames, metas = [], []
    for path in shards:
        frame, meta = read_records(path)
        frames.append(frame)
        metas.append(meta)
    first = metas[0]
    for path, meta in zip(shards, metas, strict=True):
        for key in ("settings", "tests", "seed", "n_points", "shards", "classifier_sha256", "dataset", "classifier"):
            if meta.get(key) != first.get(key):
                raise ArtifactError(f"{path}: {key} differs from {shards[0]} (shards of different runs)")
    raw = pd.concat(frames, ignore_index=True).sort_values("index", kind="stable").reset_index(drop=True)
    expected = list(range(int(first["n_points"])))
    if raw["index"].tolist() != expected:
        raise ArtifactError(f"shards {shards} do not cover test points 0..{len(expected) - 1} exactly once")
    settings = ProbSettings.from_mapping(first["settings"])
    pgd = pgd_threat = None
    if pgd_path:
        pgd, pgd_meta = read_records(pgd_path)
        if pgd_meta.get("classifier_sha256") != first["classifier_sha256"]:
            raise ArtifactError(f"{pgd_path}: PGD records of another version of {first['classifier']}")
        pgd = pgd[pgd["index"] < len(expected)]
        pgd_threat = Threat(str(pgd_meta["norm"]), float(pgd_meta["eps"]))
    for test, out in outputs.items():
        if test not in first["tests"]:
            raise ArtifactError(f"{shards[0]}: sampled for tests {first['tests']}, cannot decide {test!r}")
        frame = decide_records(raw, test, settings)
        rows = summary_rows(first["dataset"], first["classifier"], test, frame, settings, pgd, pgd_threat)
        meta = {key: first[key] for key in ("dataset", "classifier", "settings", "seed", "n_points",
                                            "classifier_sha256")}
        write_records(out, frame.to_dict("records"), {
            **meta, "test": test, "shards": list(shards), "pgd_records": pgd_path, "summary_rows": rows,
            **provenance({"probabilistic": first["config"].get("probabilistic"), "test": test}, first["seed"]),
        }, columns=COLUMNS)
        for row in rows:
            log.info("%s %s %s = %.4g (n=%d)", row["classifier"], row["evaluation"], row["metric"], row["value"],
                     row["n"])


def cmd_merge(args: argparse.Namespace) -> None:
    for item in args.plan:
        merge_classifier(list(item["shards"]), item.get("pgd"), dict(item["out"]))
