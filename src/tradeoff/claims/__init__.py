"""The papers' claims checked on a run's per-point records: one row per claim, its interval and a verdict.

Modules: :mod:`.stats` (intervals, the seed-and-point bootstrap, McNemar, Holm), :mod:`.records` (the record
reader keyed by classifier, evaluation, threat and training seed), :mod:`.table` (the verdict vocabulary, Holm
across the table, CSV and Markdown), :mod:`.choices` (the values chosen by looking at data), and one module
per paper (:mod:`.tsipras`, :mod:`.mixing`, :mod:`.mixnet`, :mod:`.era`, :mod:`.probabilistic`,
:mod:`.smoothing`) whose functions each turn the records into rows.

Guarantee: :func:`evaluate_claims` never raises on missing or unreadable records -- a claim whose records are
absent, or whose computation fails, gives a *not testable* row with the reason -- and its result depends only
on the records, the summary and ``options.seed``.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from . import era, mixing, mixnet, probabilistic, smoothing, tsipras
from .choices import read_choices, render_choices
from .common import Context
from .options import ClaimOptions
from .records import RecordMap, Records
from .stats import Evidence, bootstrap_interval, holm, mcnemar_min_pvalue, mcnemar_pvalue, proportion_interval
from .table import CLAIM_COLUMNS, OWN, VERDICTS, Row, claims_frame, decide, finalize, magnitude, render_markdown

__all__ = ["CLAIM_COLUMNS", "VERDICTS", "ClaimOptions", "Evidence", "Records", "Row", "bootstrap_interval",
           "claims_frame", "decide", "evaluate_claims", "holm", "magnitude", "mcnemar_min_pvalue", "mcnemar_pvalue",
           "proportion_interval", "read_choices", "render_choices", "render_markdown"]

CLAIMS: tuple[Callable[[Context], list[Row]], ...] = (
    *tsipras.CLAIMS, *mixing.CLAIMS, *mixnet.CLAIMS, *era.CLAIMS, *probabilistic.CLAIMS, *smoothing.CLAIMS,
    *probabilistic.OWN_CHECKS)
"""Every claim function, in the order of the table (the papers' claims, then our own checks)."""


def evaluate_claims(records: RecordMap, summary: pd.DataFrame | None = None,
                    options: ClaimOptions | None = None) -> list[dict[str, str]]:
    """Every claim's rows (columns :data:`CLAIM_COLUMNS`), with Holm's correction across the table."""
    ctx = Context(Records(records), summary, options or ClaimOptions())
    rows: list[Row] = []
    for fn in CLAIMS:
        try:
            rows.extend(fn(ctx))
        except (ImportError, NameError):  # a fault of the code, not of the records: never a "not testable" row
            raise
        except Exception as exc:  # noqa: BLE001 -- one malformed record must not hide every other claim
            name = f"{fn.__module__.rsplit('.', 1)[-1]}-{fn.__name__}".replace("_", "-")
            rows.append(Row(name, "", name, "", "", "", "", note=f"could not be evaluated: {exc!r}", section=OWN))
    return finalize(rows, level=1 - ctx.opts.confidence)
