"""The figure table of the workflow (FIGURES, filled beside each stage's rules in workflow/rules/helpers/) names
figures the CLI can draw."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from tradeoff.figures import load_all

HELPERS = Path(__file__).resolve().parents[1] / "workflow" / "rules" / "helpers"


def workflow_figures() -> list[str]:
    """The `cli` names of the entries of FIGURES, stage file by stage file."""
    return [name for path in sorted(HELPERS.glob("*.smk"))
            for name in re.findall(r'^\s+cli="([\w-]+)",$', path.read_text(), re.M)]


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
