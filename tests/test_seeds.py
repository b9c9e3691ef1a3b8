"""The seed dimension: path segments and job seeds, the `seeds` config key, summary.csv's `seed` column, the
sanity checks and figures per seed, and the 5-seed preset's DAG against the default one (two dry runs)."""

from __future__ import annotations

import copy
import re

import pandas as pd
import pytest
import yaml
from workflow_helpers import copy_workflow, parse_plan, snakemake

from tradeoff.attacks.sanity import write_sanity
from tradeoff.config import ConfigError, check_config, job_seed, seed_dir, seed_of_dir
from tradeoff.errors import TradeoffError
from tradeoff.figures.style import read_summary
from tradeoff.io import write_records
from tradeoff.records import SUMMARY_COLUMNS, summary_row, write_summary
from tradeoff.threat import Threat

# ------------------------------------------------------------------------------------------------ path segments


@pytest.mark.parametrize("seed", [0, 1, 4, 12])
def test_seed_dir_round_trips_and_seed_zero_has_no_segment(seed):
    segment = seed_dir(seed)
    assert seed_of_dir(segment) == seed
    assert (segment == "") == (seed == 0)
    assert job_seed(7, seed) == 7 + seed


@pytest.mark.parametrize("segment", ["/seed-", "/seed-x", "seed-1", "/seed-1/", "/linf-0.3"])
def test_seed_of_dir_rejects_other_segments(segment):
    with pytest.raises(ValueError, match="seed path segment"):
        seed_of_dir(segment)


@pytest.fixture
def default(root):
    return yaml.safe_load((root / "config.yaml").read_text())


@pytest.mark.parametrize("seeds", [[], [0, 0], [-1], [0.5], "0"])
def test_bad_seeds_stop_the_config_check_naming_the_key(root, default, seeds):
    cfg = copy.deepcopy(default)
    cfg["seeds"] = seeds
    with pytest.raises(ConfigError, match="seeds"):
        check_config(cfg, root / "workflow" / "schemas" / "config.schema.yaml")


def test_default_runs_seed_zero_only(default):
    assert default["seeds"] == [0]


# ------------------------------------------------------------------------------------------------ summary.csv


def _record(path, classifier: str, evaluation: str, value: float, eps: float = 0.3) -> str:
    row = summary_row("digits", classifier, evaluation, Threat("Linf", eps), "accuracy", value, 40)
    write_records(path, [{"index": 0, "correct": 1}], {"summary_rows": [row]})
    return str(path)


def test_summary_gains_a_seed_column_last_and_keeps_the_other_columns(tmp_path):
    a = _record(tmp_path / "a.csv", "pgd_at", "worst", 0.5)
    b = _record(tmp_path / "b.csv", "pgd_at", "worst", 0.7)
    write_summary([a], tmp_path / "one.csv")
    one = pd.read_csv(tmp_path / "one.csv")
    assert list(one.columns) == ["dataset", "classifier", "evaluation", "norm", "eps", "metric", "value", "n", "seed"]
    assert one.seed.tolist() == [0]
    # the same ids under two seeds: one row per seed, seed 0 first whatever the input order
    write_summary([b, a], tmp_path / "two.csv", [3, 0])
    two = pd.read_csv(tmp_path / "two.csv")
    assert two[["classifier", "seed", "value"]].values.tolist() == [["pgd_at", 0, 0.5], ["pgd_at", 3, 0.7]]
    assert list(two.columns) == SUMMARY_COLUMNS and SUMMARY_COLUMNS[-1] == "seed"
    with pytest.raises(TradeoffError, match="one per record"):
        write_summary([a, b], tmp_path / "bad.csv", [0])


def test_figures_read_the_first_seed_only(tmp_path):
    records = [_record(tmp_path / f"{s}.csv", "trades", "worst", v) for s, v in ((2, 0.2), (1, 0.1), (5, 0.5))]
    write_summary(records, tmp_path / "summary.csv", [2, 1, 5])
    rows = read_summary(tmp_path / "summary.csv", {"norm": "Linf", "eps": 0.3})
    assert rows.value.tolist() == [0.1] and rows.seed.tolist() == [1]


def test_sanity_checks_run_per_seed(tmp_path):
    # an ε-sweep that falls to 0 for seed 0, and stays at 0.9 at the largest budget for seed 1 (masked gradients)
    records, seeds = [], []
    for seed, top in ((0, 0.0), (1, 0.9)):
        for eps, value in ((0.1, 0.95), (0.3, 0.9), (1.2, top)):
            records.append(_record(tmp_path / f"s{seed}-{eps}.csv", "standard", "eps-sweep", value, eps))
            seeds.append(seed)
    write_summary(records, tmp_path / "summary.csv", seeds)
    checks = write_sanity(tmp_path / "summary.csv", {"large_eps": 1.0}, tmp_path / "sanity.csv")
    zero = {c.seed: c.passed for c in checks if c.check == "zero_at_large_eps"}
    assert zero == {0: True, 1: False}
    table = pd.read_csv(tmp_path / "sanity.csv")
    assert table.columns[-1] == "seed" and set(table.seed) == {0, 1}


# ------------------------------------------------------------------------------------------------ the DAG


@pytest.fixture(scope="module")
def plans(tmp_path_factory):
    """{name: dry-run plan} of the default config and of presets/seeds5.yaml, in a fresh copy of the workflow."""
    work = copy_workflow(tmp_path_factory.mktemp("seeds"))
    text = {
        "default": snakemake(work, "-n", timeout=900),
        "seeds5": snakemake(work, "-n", "--configfile", "presets/seeds5.yaml", timeout=900),
    }
    return {name: parse_plan(proc.stdout + proc.stderr) for name, proc in text.items()}


def _outputs(plan):
    return {o for outs in plan.values() for o in outs}


ONCE = re.compile(r"results/(env/|[^/]+/data\.|summary|sanity|claims|figures/|tables/)")


@pytest.mark.slow
def test_five_seeds_run_every_seed_dependent_job_five_times_and_the_rest_once(plans, root):
    seeds = yaml.safe_load((root / "presets" / "seeds5.yaml").read_text())["seeds"]
    default, five = _outputs(plans["default"]), _outputs(plans["seeds5"])
    assert seeds == [0, 1, 2, 3, 4]
    per_seed = {o for o in default if not ONCE.match(o)}
    assert "results/digits/linf-0.3/models/pgd_at.pt" in per_seed
    assert "results/tsipras/models/standard.pt" in per_seed
    expected = set(default)
    for s in seeds[1:]:
        # the seed's segment right after results/<dataset>
        expected |= {re.sub(r"^(results/[^/]+)/", rf"\1/seed-{s}/", o) for o in per_seed}
    assert five == expected
    # the data splits, the environment check and the tables reading every seed: once
    assert sorted(o for o in five if o.endswith("data.pt")) == sorted(o for o in default if o.endswith("data.pt"))
    # and the jobs that depend on the seed count five times each
    counts = {rule: len(outs) for rule, outs in plans["seeds5"].items()}
    for rule in ("train", "train_shared", "attacks_shard", "certify_shard", "mixing_fit", "era_composite_shard",
                 "probabilistic_shard", "theory_train", "era_gauss3_train"):
        assert counts[rule] == 5 * len(plans["default"][rule]), rule
