"""The workflow imported by another workflow as a Snakemake module (config passed in, every rule reused
under a prefix) plans the same jobs as when it runs on its own."""

from __future__ import annotations

from pathlib import Path

import pytest
from workflow_helpers import copy_workflow, parse_plan, snakemake

OUTER = """\
configfile: "{wf}/config.yaml"


module tradeoff:
    snakefile:
        "{wf}/Snakefile"
    config:
        config


use rule * from tradeoff as tradeoff_*
"""


@pytest.mark.slow
def test_smoke_preset_dry_runs_through_a_module(tmp_path: Path):
    wf = copy_workflow(tmp_path / "tradeoff")
    outer = tmp_path / "outer"  # apart from the module, so no path resolves against its folder by accident
    outer.mkdir()
    (outer / "Snakefile").write_text(OUTER.format(wf=wf))
    preset = str(wf / "presets" / "smoke.yaml")

    proc = snakemake(outer, "-n", "--configfile", preset, timeout=600)
    through_module = parse_plan(proc.stdout + proc.stderr)
    proc = snakemake(wf, "-n", "--configfile", "presets/smoke.yaml", timeout=600)
    direct = parse_plan(proc.stdout + proc.stderr)

    assert through_module, "the outer workflow plans no job"
    assert all(rule.startswith("tradeoff_") for rule in through_module), sorted(through_module)
    # the same rules, writing the same files (relative to the outer workflow's working directory)
    stripped = {rule.removeprefix("tradeoff_"): sorted(out) for rule, out in through_module.items()}
    stripped.pop("all", None)  # parse_plan drops the target rule by its own name only
    assert stripped == {rule: sorted(out) for rule, out in direct.items()}
    assert not (wf / "results").exists(), "a dry run through the module wrote into the module's folder"
