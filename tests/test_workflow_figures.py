"""The figure table of the workflow (FIGURES in workflow/rules/common.smk) names figures the CLI can draw."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from tradeoff.figures import load_all

COMMON = Path(__file__).resolve().parents[1] / "workflow" / "rules" / "common.smk"


def workflow_figures() -> list[str]:
    """The `cli` names of the entries of FIGURES, in the table's order."""
    return re.findall(r'^\s+cli="([\w-]+)",$', COMMON.read_text(), re.M)


def test_every_workflow_figure_is_a_registered_figure_that_takes_out():
    """A misspelled or removed figure name would only fail when its job runs, after the whole DAG; this catches it
    at test time, and every figure function takes the `--out` path the rule passes."""
    names = workflow_figures()
    assert names, "no cli= entries found in FIGURES"
    assert len(names) == len(set(names)), names
    registered = load_all()
    assert set(names) <= set(registered), sorted(set(names) - set(registered))
    for name in names:
        assert "out" in inspect.signature(registered[name]).parameters, name
