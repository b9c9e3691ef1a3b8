"""Helpers shared by the subcommands: logging, threads, device, JSON arguments, threat model."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import TYPE_CHECKING, Any

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
