"""``tradeoff figures NAME``: draw one registered figure."""

from __future__ import annotations

import argparse

from ..errors import TradeoffError
from ..figures import load_all
from .common import json_arg


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("figures", help="draw a figure from summary.csv / per-sample records")
    p.add_argument("name")
    p.add_argument("--out", required=True, help="PNG path (a PDF is written next to it)")
    p.add_argument("--args", type=json_arg, default={}, help="keyword arguments of the figure (JSON)")
    p.set_defaults(func=cmd_figure)


def cmd_figure(args: argparse.Namespace) -> None:
    figures = load_all()
    if args.name not in figures:
        raise TradeoffError(f"unknown figure '{args.name}' (known: {', '.join(sorted(figures))})")
    figures[args.name](out=args.out, **args.args)
