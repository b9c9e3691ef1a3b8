"""Per-sample records and the summary rows they carry (no torch here: the light commands that only read and
merge records, such as ``worst`` and ``summarize``, start without importing it).

A record list has one row per test point: index into the test split, label, clean prediction, prediction on
the attacked input, correctness, size of the perturbation found. Accuracy under attack is the fraction of
points whose attacked prediction equals the label; a point misclassified clean counts as an error.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .threat import Threat

RECORD_COLUMNS = ["index", "label", "clean_prediction", "prediction", "correct", "perturbation"]
SWEEP_COLUMNS = ["eps", *RECORD_COLUMNS]
ATTACKS = ("clean", "pgd", "margin", "autoattack", "eps-sweep")
"""The evaluations of :func:`tradeoff.evaluate.run_attack`."""


def clean_records(records: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The clean evaluation's records, read off an attack's records (which carry the clean predictions).

    Guarantee: equal to the records of ``run_attack(..., attack="clean")`` on the same model and points,
    without a second pass over the data.
    """
    return [
        {"index": int(r["index"]), "label": int(r["label"]), "clean_prediction": int(r["clean_prediction"]),
         "prediction": int(r["clean_prediction"]), "correct": int(r["clean_prediction"] == r["label"]),
         "perturbation": 0.0}
        for r in records
    ]


def accuracy_rows(dataset: str, classifier: str, evaluation: str, threat: Threat | None,
                  records: list[Mapping[str, Any]], metric: str = "accuracy",
                  column: str = "correct") -> list[dict[str, Any]]:
    """The tidy summary row(s) of one per-sample evaluation."""
    n = len(records)
    value = sum(float(r[column]) for r in records) / n if n else float("nan")
    return [summary_row(dataset, classifier, evaluation, threat, metric, value, n)]


def evaluation_rows(dataset: str, classifier: str, evaluation: str, threat: Threat | None,
                    records: list[Mapping[str, Any]], meta: Mapping[str, Any] | None = None
                    ) -> list[dict[str, Any]]:
    """The summary rows of one :func:`run_attack` result: the accuracy row (one per budget for
    ``eps-sweep``, each with its own ``eps``) and, for AutoAttack, the accuracy after each of its attacks
    (metric ``accuracy_after_<attack>``; they run in sequence on the surviving points, so these are
    non-increasing)."""
    if evaluation == "eps-sweep" and threat is not None:
        rows = []
        for eps in sorted({float(r["eps"]) for r in records}):
            block = [r for r in records if float(r["eps"]) == eps]
            rows += accuracy_rows(dataset, classifier, evaluation, Threat(threat.norm, eps, threat.bounds), block)
        return rows
    rows = accuracy_rows(dataset, classifier, evaluation, threat, records)
    n = len(records)
    for name, value in dict((meta or {}).get("accuracy_by_attack", {})).items():
        # pyautoattack logs percentages with two decimals: back to a count of points
        rows.append(summary_row(dataset, classifier, evaluation, threat, f"accuracy_after_{name}",
                                round(float(value) * n) / n if n else float("nan"), n))
    return rows


def summary_row(dataset: str, classifier: str, evaluation: str, threat: Threat | None, metric: str,
                value: float, n: int) -> dict[str, Any]:
    """One row of ``results/summary.csv``: dataset, classifier, evaluation, norm, eps, metric, value, n."""
    return {
        "dataset": dataset, "classifier": classifier, "evaluation": evaluation,
        "norm": "" if threat is None else threat.norm, "eps": 0.0 if threat is None else float(threat.eps),
        "metric": metric, "value": float(value), "n": int(n),
    }
