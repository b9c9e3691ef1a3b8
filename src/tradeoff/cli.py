"""``tradeoff`` command line: one subcommand per pipeline stage (each Snakemake rule is one call)."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from .commands import MODULES
from .commands.common import setup_logging
from .io import ArtifactError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tradeoff", description=__doc__)
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level)
    try:
        args.func(args)
    except ArtifactError as exc:
        logging.getLogger("tradeoff").error("bad artifact: %s", exc)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
