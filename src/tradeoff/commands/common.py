"""Helpers shared by the subcommands: logging, threads, device, JSON arguments, threat model."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import TYPE_CHECKING, Any

from ..shards import check_shard
from ..threat import Threat

if TYPE_CHECKING:
    import torch


def add_runtime_args(parser: argparse.ArgumentParser) -> None:
    """Options every compute command takes: threads, device, requested GPUs, seed."""
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--gpus", type=int, default=0, help="GPUs the scheduler gave this job")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true", help="disable progress bars")


def json_arg(text: str) -> Any:
    """argparse type: a JSON literal (config sections reach the CLI this way)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON: {exc}") from exc


def seed_list(text: str) -> list[int]:
    """argparse type: comma-separated training seeds (integers ≥ 0), e.g. ``0,0,1``."""
    try:
        seeds = [int(part) for part in text.split(",")]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of seeds: {text!r}") from exc
    if any(s < 0 for s in seeds):
        raise argparse.ArgumentTypeError(f"seeds must be ≥ 0: {text!r}")
    return seeds


def setup_logging(level: str = "INFO") -> None:
    logging.basicConfig(stream=sys.stderr, level=getattr(logging, level),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)


def runtime(args: argparse.Namespace) -> torch.device:
    """Apply the runtime options and return the device (logged)."""
    from ..device import select_device, set_threads

    set_threads(args.threads)
    return select_device(args.device, args.gpus)


def threat_from(spec: dict[str, Any], bounds: tuple[float, float] | None) -> Threat:
    """Threat model from a config section ``{norm, eps}`` and the dataset's value bounds."""
    return Threat(str(spec["norm"]), float(spec["eps"]), bounds)


def add_shard_args(parser: argparse.ArgumentParser) -> None:
    """``--shard k --shards n`` of a per-point stage command (without ``--shards``: the whole job)."""
    parser.add_argument("--shard", type=int, default=0, help="which shard this job is (0..shards-1)")
    parser.add_argument("--shards", type=int, default=None,
                        help="run shard k of n: the chunks (of --batch-size points) whose number c has c mod n = k, "
                             "written to <folder of --out>/shards/<name of --out>-<k>-of-<n>.csv (n = 1 included); "
                             "`merge <stage>` then writes --out, equal to the whole job's (without --shards)")


def check_shard_args(args: argparse.Namespace) -> None:
    """Refuse (:class:`~tradeoff.errors.TradeoffError`) a shard number outside ``0..shards-1``."""
    check_shard(args.shard, args.shards if args.shards is not None else 1)
