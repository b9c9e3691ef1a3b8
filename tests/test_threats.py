"""The threat dimension: ids, stage threat lists, and the per-threat reading of summary.csv by the figures."""

import pandas as pd
import pytest

from tradeoff.config import stage_threat_ids, threat_id
from tradeoff.figures.style import read_summary
from tradeoff.figures.threats import accuracy_by_threat
from tradeoff.figures.unified import comparison_table

COLUMNS = ["dataset", "classifier", "evaluation", "norm", "eps", "metric", "value", "n"]


def test_threat_ids_are_path_segments():
    assert threat_id({"norm": "Linf", "eps": 0.3}) == "linf-0.3"
    assert threat_id({"norm": "L2", "eps": 0.5}) == "l2-0.5"
    assert threat_id({"norm": "Linf", "eps": 8 / 255}) == "linf-0.0313725"


def test_stage_threats_default_to_all_and_keep_the_config_order():
    config = {"threats": [{"norm": "Linf", "eps": 0.1}, {"norm": "Linf", "eps": 0.3}],
              "era": {"threats": [{"norm": "Linf", "eps": 0.3}, {"norm": "Linf", "eps": 0.1}]},
              "mixing": {"threats": None}, "models": {"pgd_at": {"threats": [{"norm": "Linf", "eps": 0.3}]}}}
    assert stage_threat_ids(config, "era.threats") == ["linf-0.1", "linf-0.3"]
    assert stage_threat_ids(config, "mixing.threats") == ["linf-0.1", "linf-0.3"]
    assert stage_threat_ids(config, "probabilistic.threats") == ["linf-0.1", "linf-0.3"]
    assert stage_threat_ids(config, "models.pgd_at.threats") == ["linf-0.3"]


@pytest.fixture
def summary(tmp_path):
    rows = [
        # pgd_at at two budgets: its clean accuracy differs between them (trained per budget)
        ("digits", "pgd_at", "clean", "Linf", 0.1, "accuracy", 0.97, 360),
        ("digits", "pgd_at", "autoattack", "Linf", 0.1, "accuracy", 0.80, 360),
        ("digits", "pgd_at", "worst", "Linf", 0.1, "accuracy", 0.78, 360),
        ("digits", "pgd_at", "clean", "Linf", 0.3, "accuracy", 0.88, 360),
        ("digits", "pgd_at", "pgd", "Linf", 0.3, "accuracy", 0.35, 360),
        ("digits", "pgd_at", "autoattack", "Linf", 0.3, "accuracy", 0.22, 360),
        ("digits", "pgd_at", "certify-prob-sequential", "Linf", 0.3, "certified_rate", 0.68, 120),
        ("digits", "variance", "clean", "Linf", 0.3, "accuracy", 0.99, 360),
        ("digits", "variance", "autoattack", "Linf", 0.3, "accuracy", 0.0, 360),
        ("digits", "variance", "certify-prob-sequential", "Linf", 0.3, "certified_rate", 0.81, 120),
        ("digits", "gauss_aug-0.25", "clean", "Linf", 0.3, "accuracy", 0.98, 360),
        ("digits", "gauss_aug-0.25", "autoattack", "Linf", 0.3, "accuracy", 0.0, 360),
        ("digits", "gauss_aug-0.25", "certify-rs", "L2", 0.0, "certified_accuracy", 0.99, 120),
        ("digits", "gauss_aug-0.25", "certify-rs", "L2", 0.25, "certified_accuracy", 0.90, 120),
    ]
    path = tmp_path / "summary.csv"
    pd.DataFrame(rows, columns=COLUMNS).to_csv(path, index=False)
    return path


def test_reading_one_threat_keeps_its_rows_and_the_l2_certificates(summary):
    at_01 = read_summary(summary, {"norm": "Linf", "eps": 0.1})
    assert set(at_01.eps[at_01.evaluation != "certify-rs"]) == {0.1}
    assert (at_01.evaluation == "certify-rs").sum() == 2
    at_03 = read_summary(summary, {"norm": "Linf", "eps": 0.3})
    clean = at_03[(at_03.classifier == "pgd_at") & (at_03.evaluation == "clean")]
    assert clean.value.tolist() == [0.88]  # the model trained at 0.3, not the one at 0.1


def test_comparison_table_prefers_the_per_point_worst_case_and_keeps_certificate_kinds_apart(summary):
    at_01 = comparison_table(read_summary(summary, {"norm": "Linf", "eps": 0.1}), "digits")
    assert at_01.loc["pgd_at", "robust"] == pytest.approx(0.78)  # worst, below AutoAttack's 0.80
    at_03 = comparison_table(read_summary(summary, {"norm": "Linf", "eps": 0.3}), "digits")
    assert at_03.loc["pgd_at", "robust"] == pytest.approx(0.22)  # no worst row: the lowest attack accuracy
    # the probabilistic certificate is not a deterministic one, and an adversary breaks the variance model
    assert at_03.loc["variance", "certified_prob"] == pytest.approx(0.81)
    assert pd.isna(at_03.loc["variance", "certified_l2"])
    assert at_03.loc["variance", "robust"] == 0.0
    assert at_03.loc["gauss_aug-0.25", "certified_l2"] == pytest.approx(0.90)
    assert at_03.loc["gauss_aug-0.25", "certified_l2_at"] == "certify-rs L2 r=0.25"


def test_accuracy_by_threat_takes_each_budgets_own_clean_and_lowest_attack(summary):
    table = accuracy_by_threat(read_summary(summary), "digits",
                               [{"norm": "Linf", "eps": 0.1}, {"norm": "Linf", "eps": 0.3}]).set_index(
        ["classifier", "eps"])
    assert table.loc[("pgd_at", 0.1), "clean"] == pytest.approx(0.97)
    assert table.loc[("pgd_at", 0.1), "robust"] == pytest.approx(0.78)
    assert table.loc[("pgd_at", 0.3), "clean"] == pytest.approx(0.88)
    assert table.loc[("pgd_at", 0.3), "robust"] == pytest.approx(0.22)
    assert ("variance", 0.1) not in table.index
