"""Per-sample records and the summary rows they carry (no torch here: the light commands that only read and
merge records, such as ``attacks-worst`` and ``summary``, start without importing it).

A record list has one row per test point: index into the test split, label, clean prediction, prediction on
the attacked input, correctness, size of the perturbation found. Accuracy under attack is the fraction of
points whose attacked prediction equals the label; a point misclassified clean counts as an error.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .errors import TradeoffError
from .io import provenance, read_json, read_records, sidecar, write_records, write_text
from .threat import Threat

log = logging.getLogger("tradeoff")

RECORD_COLUMNS = ["index", "label", "clean_prediction", "prediction", "correct", "perturbation"]
SWEEP_COLUMNS = ["eps", *RECORD_COLUMNS]
ATTACKS = ("clean", "pgd", "margin", "autoattack", "eps-sweep")
"""The evaluations of :func:`tradeoff.attacks.evaluate.evaluate_batch`."""
LABEL_ATTACKS = ("pgd", "margin", "autoattack")
"""The attacks at the threat's ε whose breaks an evaluation run after them in the same job builds on."""
PROGRESS_COLUMNS = ["batch", "attack", *SWEEP_COLUMNS, "meta"]
"""Rows of an evaluation job's progress file and shard records: one per (evaluation, budget, point), then
one closing row per batch (``attack`` empty) whose ``meta`` holds the batch's metadata as JSON."""
SUMMARY_COLUMNS = ["dataset", "classifier", "evaluation", "norm", "eps", "metric", "value", "n", "seed"]
"""Columns of ``results/summary.csv`` (:func:`summary_row`, :func:`write_summary`): ``seed`` is the training seed of
the run whose record gave the row (0 in a one-seed run), last so that readers of the earlier columns keep working."""
SHARD_KEYS = ("classifier_sha256", "data_sha256", "attacks", "threat", "params", "seed", "batch_size", "shards")
"""Sidecar keys every shard of one evaluation job shares (:func:`merge_evaluation_shards`)."""
_INT_COLUMNS = ("index", "label", "clean_prediction", "prediction", "correct")


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
    """One row of ``results/summary.csv`` as a record's sidecar holds it: dataset, classifier, evaluation, norm, eps,
    metric, value, n (the summary adds the training seed)."""
    return {
        "dataset": dataset, "classifier": classifier, "evaluation": evaluation,
        "norm": "" if threat is None else threat.norm, "eps": 0.0 if threat is None else float(threat.eps),
        "metric": metric, "value": float(value), "n": int(n),
    }


def _typed(row: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {k: int(float(row[k])) for k in _INT_COLUMNS}
    out["perturbation"] = float(row["perturbation"])
    return out


def suite_results(rows: Sequence[Mapping[str, Any]], batch_metas: Sequence[Mapping[str, Any]],
                  attacks: Sequence[str], threat: Threat, params: Mapping[str, Mapping[str, Any]]
                  ) -> dict[str, tuple[list[dict[str, Any]], dict[str, Any]]]:
    """Per evaluation, its records (sorted by budget, then index) and metadata, from the rows of
    :data:`PROGRESS_COLUMNS` (typed or as read from CSV) and the per-batch metadata of any number of batches.

    Guarantee: a pure function of the set of batches, whatever their order or grouping into shards, so
    merged shards give the records and metadata of one unsharded job. AutoAttack's ``accuracy_by_attack``
    counts, over all points, those still standing after each of its attacks (points broken before it count
    as broken); its flags hold if they held on any batch.
    """
    out: dict[str, tuple[list[dict[str, Any]], dict[str, Any]]] = {}
    for attack in attacks:
        mine = [r for r in rows if r["attack"] == attack]
        if attack == "eps-sweep":
            recs = sorted(({"eps": float(r["eps"]), **_typed(r)} for r in mine), key=lambda r: (r["eps"], r["index"]))
        else:
            recs = sorted((_typed(r) for r in mine), key=lambda r: r["index"])
        meta: dict[str, Any] = {"attack": attack, "norm": threat.norm, "eps": threat.eps,
                                "params": dict(params.get(attack, {})), "order": list(attacks)}
        parts = [m.get(attack, {}) for m in batch_metas]
        if attack == "margin":
            broken: dict[str, int] = {}
            for part in parts:
                for k, v in part.get("broken_by", {}).items():
                    broken[k] = broken.get(k, 0) + int(v)
            meta["broken_by"] = dict(sorted(broken.items()))
        elif attack == "eps-sweep":
            meta["eps_grid"] = sorted({float(e) for part in parts for e in part.get("eps_grid", [])})
        elif attack == "autoattack":
            earlier = [a for a in attacks[:attacks.index(attack)] if a in LABEL_ATTACKS]
            names = list(dict.fromkeys(k for part in parts for k in part.get("robust_after", {})))
            n = len(recs)
            meta.update(
                run_on=f"points {' and '.join(earlier)} left standing" if earlier else "every point",
                attacked=sum(int(part.get("attacked", 0)) for part in parts),
                accuracy_by_attack={k: sum(int(part.get("robust_after", {}).get(k, 0)) for part in parts) / n
                                    for k in names} if n else {},
                flags={k: any(part.get("flags", {}).get(k, False) for part in parts)
                       for k in dict.fromkeys(k for part in parts for k in part.get("flags", {}))},
                warnings=list(dict.fromkeys(w for part in parts for w in part.get("warnings", []))),
            )
        out[attack] = (recs, meta)
    return out


def batch_metas(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The per-batch metadata of the closing rows among ``rows`` (:data:`PROGRESS_COLUMNS`), by batch."""
    closing = sorted((r for r in rows if r["attack"] == ""), key=lambda r: int(float(r["batch"])))
    return [json.loads(r["meta"]) for r in closing]


def write_evaluations(out_dir: str | Path, dataset: str, name: str, threat: Threat, rows: list[dict[str, Any]],
                      metas: list[dict[str, Any]], attacks: list[str], params: Mapping[str, Any],
                      context: Mapping[str, Any], seed: int | None, suffix: str = "") -> None:
    """Write ``<out_dir>/<attack>.csv`` (:data:`RECORD_COLUMNS`, :data:`SWEEP_COLUMNS` for ``eps-sweep``) and its
    sidecar with the summary rows (:func:`evaluation_rows`, evaluation id ``<attack><suffix>``) for every
    evaluation of ``attacks``, from the progress rows and per-batch metadata of :func:`suite_results`;
    ``context`` joins each sidecar."""
    for attack, (records, meta) in suite_results(rows, metas, attacks, threat, params).items():
        summary = evaluation_rows(dataset, name, attack + suffix, threat, records, meta)
        write_records(Path(out_dir) / f"{attack}.csv", records, {
            **meta, "dataset": dataset, "classifier": name, "summary_rows": summary, **context,
            **provenance({"attack": attack, "threat": {"norm": threat.norm, "eps": threat.eps},
                          "params": params.get(attack, {})}, seed),
        }, columns=SWEEP_COLUMNS if attack == "eps-sweep" else RECORD_COLUMNS)
        log.info("%s / %s: accuracy %.4f on %d points", name, attack, summary[0]["value"], summary[0]["n"])


def merge_evaluation_shards(shards: Sequence[str], out_dir: str | Path, name: str, attacks: Sequence[str],
                            threat: Threat, params: Mapping[str, Any]) -> None:
    """Write the per-evaluation records of one evaluation job (:func:`write_evaluations`) from the records of
    its shards. Guarantee: the records equal those of the unsharded job (:func:`suite_results` is a function
    of the set of batches). Raises :class:`TradeoffError` naming the file when a shard belongs to another run
    (a :data:`SHARD_KEYS` value differs) or when the shards given are not exactly ``0..shards-1``."""
    rows: list[dict[str, Any]] = []
    metas: list[dict[str, Any]] = []
    ref: dict[str, Any] | None = None
    for path in shards:
        frame, meta = read_records(path)
        if ref is None:
            ref = meta
        for key in SHARD_KEYS:
            if meta.get(key) != ref.get(key):
                raise TradeoffError(f"{path}: {key} differs from {shards[0]}'s: shards of different runs")
        part = frame.astype(object).where(frame.notna(), "").to_dict("records")  # empty cells: ""
        rows += part
        metas += batch_metas(part)
    assert ref is not None
    got = sorted(int(read_json(sidecar(p))["shard"]) for p in shards)
    if got != list(range(int(ref["shards"]))):
        raise TradeoffError(f"merge attacks: shards {got} given, need 0..{int(ref['shards']) - 1}")
    write_evaluations(out_dir, str(ref["dataset"]), name, threat, rows, metas, list(attacks),
                      {a: params.get(a, {}) for a in attacks},
                      {"classifier_sha256": ref.get("classifier_sha256"), "batch_size": ref.get("batch_size"),
                       "shards": int(ref["shards"]), **({"split": ref["split"]} if "split" in ref else {})},
                      ref.get("seed"), suffix="-all" if ref.get("split") == "all" else "")


def collect_rows(inputs: Sequence[str], seeds: Sequence[int] | None = None) -> list[dict[str, Any]]:
    """Summary rows from the sidecars of ``inputs``, each with the training seed ``seeds[i]`` of its record (0 for
    every record when ``seeds`` is None); each record is verified against its sidecar's checksum and row count
    first, so a truncated or edited record stops the table with its name."""
    if seeds is None:
        seeds = [0] * len(inputs)
    if len(seeds) != len(inputs):
        raise TradeoffError(f"summary: {len(seeds)} seeds given for {len(inputs)} records (need one per record)")
    rows: list[dict[str, Any]] = []
    for path, seed in zip(inputs, seeds, strict=True):
        _, meta = read_records(path)
        rows.extend({**row, "seed": int(seed)} for row in meta.get("summary_rows", []))
    return rows


def write_summary(inputs: Sequence[str], out: str | Path, seeds: Sequence[int] | None = None) -> int:
    """Write the summary table (:data:`SUMMARY_COLUMNS`) of the records ``inputs`` of training seeds ``seeds`` (one
    per record; all 0 when None), sorted by dataset, classifier, evaluation, metric, ε and seed (stable, so input
    order breaks ties); returns its number of rows."""
    import pandas as pd

    frame = pd.DataFrame(collect_rows(inputs, seeds), columns=SUMMARY_COLUMNS)
    frame = frame.sort_values(["dataset", "classifier", "evaluation", "metric", "eps", "seed"], kind="stable")
    write_text(out, frame.to_csv(index=False, float_format="%.6g", lineterminator="\n"))
    log.info("%d summary rows -> %s", len(frame), out)
    return len(frame)
