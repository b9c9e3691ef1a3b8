"""``tradeoff`` command line: one subcommand per pipeline stage (each Snakemake rule is one call)."""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback

from .commands import commands, modules
from .commands.common import setup_logging
from .errors import EXIT_USER_ERROR, TradeoffError
from .progress import interval_arg, set_default_interval

EPILOG = f"""exit status: 0 done; 1 an unexpected error (a bug: its traceback is printed); 2 a malformed command
line (and zoo: the model cannot be obtained); {EXIT_USER_ERROR} a fault to fix on your side (a bad
config or argument value, a missing, truncated or inconsistent artifact), reported as one line
"tradeoff: error: <message naming the file or the key>" (--debug prints its traceback instead)."""


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
    parser = argparse.ArgumentParser(prog="tradeoff", description=__doc__, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    parser.add_argument("--progress-interval", type=interval_arg, default=None, metavar="SECONDS",
                        help="seconds between progress lines of long loops in the log (default: "
                             "$TRADEOFF_PROGRESS_INTERVAL or 15)")
    parser.add_argument("--debug", action="store_true",
                        help=f"on a user-facing error (exit status {EXIT_USER_ERROR}) print its traceback instead "
                             "of one line")
    sub = parser.add_subparsers(dest="command", required=True)
    wanted = _requested(argv if argv is not None else sys.argv[1:])
    registry = commands()
    for name in [registry[wanted]] if wanted in registry else modules():
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand; returns the exit status (see :data:`EPILOG`).

    A :class:`~tradeoff.errors.TradeoffError` becomes one line ``tradeoff: error: <message>`` on stderr (its
    traceback with ``--debug``) and status :data:`~tradeoff.errors.EXIT_USER_ERROR`; any other exception
    propagates with its traceback (status 1).
    """
    args = build_parser(argv).parse_args(argv)
    setup_logging(args.log_level)
    set_default_interval(args.progress_interval)
    try:
        args.func(args)
    except TradeoffError as exc:
        if args.debug:
            traceback.print_exc(file=sys.stderr)
        else:
            print(f"tradeoff: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return EXIT_USER_ERROR
    return 0


if __name__ == "__main__":
    sys.exit(main())
