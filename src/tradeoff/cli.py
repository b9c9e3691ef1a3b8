"""``tradeoff`` command line: one subcommand per pipeline stage (each Snakemake rule is one call)."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from .commands import COMMANDS, MODULES
from .commands.common import setup_logging
from .io import ArtifactError
from .progress import interval_arg, set_default_interval


def _requested(argv: list[str]) -> str | None:
    """The subcommand named on the command line (skipping the global options), if any."""
    skip = False
    for token in argv:
        if skip:
            skip = False
        elif token in ("--log-level", "--progress-interval"):
            skip = True
        elif not token.startswith("-"):
            return token
    return None


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The argument parser. When ``argv`` names a known subcommand only its module is imported, so that a
    job pays the import cost of its own stage only (every Snakemake job is one CLI call)."""
    parser = argparse.ArgumentParser(prog="tradeoff", description=__doc__)
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    parser.add_argument("--progress-interval", type=interval_arg, default=None, metavar="SECONDS",
                        help="seconds between progress lines of long loops in the log (default: "
                             "$TRADEOFF_PROGRESS_INTERVAL or 15)")
    sub = parser.add_subparsers(dest="command", required=True)
    wanted = _requested(argv if argv is not None else sys.argv[1:])
    modules = [COMMANDS[wanted]] if wanted in COMMANDS else MODULES
    for name in modules:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser(argv).parse_args(argv)
    setup_logging(args.log_level)
    set_default_interval(args.progress_interval)
    try:
        args.func(args)
    except ArtifactError as exc:
        logging.getLogger("tradeoff").error("bad artifact: %s", exc)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
