"""``tradeoff claims``: the papers' claims checked on the run's per-point records (results/claims.csv, .md)."""

from __future__ import annotations

import argparse
import logging
from collections import Counter

from .common import json_arg

log = logging.getLogger("tradeoff")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("claims", help="the papers' claims: paper's number, ours, a 95%% interval and a verdict")
    p.add_argument("--records", type=json_arg, required=True,
                   help='{"classifier|evaluation|threat_id[|seed]": record path, ...} (threat_id "none": threat-free; '
                   'no seed: training seed 0)')
    p.add_argument("--summary", required=True, help="results/summary.csv (the closed forms are read from it)")
    p.add_argument("--options", type=json_arg, default={}, help="tradeoff.claims.ClaimOptions fields (JSON)")
    p.add_argument("--choices", default="", help="folder of JSON records of values chosen by looking at data "
                   "(docs/choices): the \"How this run was configured\" table")
    p.add_argument("--out", required=True, help="claims CSV; the Markdown goes next to it (.md)")
    p.set_defaults(func=cmd_claims)


def cmd_claims(args: argparse.Namespace) -> None:
    from pathlib import Path

    import pandas as pd

    from ..claims import ClaimOptions, claims_frame, evaluate_claims, read_choices, render_choices, render_markdown
    from ..io import write_text

    choices = render_choices(read_choices(args.choices))
    records = {tuple(key.split("|")): path for key, path in args.records.items()}
    options = ClaimOptions(**{k: tuple(v) if isinstance(v, list) else v for k, v in args.options.items()})
    rows = evaluate_claims(records, pd.read_csv(args.summary), options)
    write_text(args.out, claims_frame(rows).to_csv(index=False, lineterminator="\n"))
    write_text(Path(args.out).with_suffix(".md"), render_markdown(rows, choices))
    log.info("%d claims: %s", len(rows), dict(Counter(r["verdict"] for r in rows)))
