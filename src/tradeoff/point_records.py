"""Records of the per-point stages (robustness records, the ERA composite's evaluation, the mixing network's
adaptive evaluation): their columns, their summary rows and metadata, and the merge of a stage's shards.
No torch here: merging shards is a light job that only reads and writes records.

A stage job (:class:`tradeoff.resume.PointJob`) evaluates the test points in chunks of a fixed grid of its
batch size ``B``; with ``shards`` = n > 1, shard k runs the chunks ``c`` (first index ``c·B``) with
``c mod n = k`` and writes their rows to its shard record (:func:`shard_path`). Every row depends on its
chunk only (seeded by the chunk's first index), so the shards' rows, concatenated and sorted by index, are
the rows of one unsharded job, and :func:`finish` computes the same summary rows and metadata from them
(:func:`merge_shards`).

The *finish context* of a job (:func:`finish_context`) is the JSON-able description of everything its
summary and metadata need besides its rows; an unsharded job finishes with it, a shard stores it in its
sidecar for the merge.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import TradeoffError
from .io import check_records, provenance, write_records
from .records import summary_row
from .shards import shard_indices, shard_path
from .threat import Threat

__all__ = ["ADAPTIVE_COLUMNS", "ADAPTIVE_METRICS", "COMPOSITE_COLUMNS", "ROBUSTNESS_COLUMNS", "STAGES",
           "adaptive_summary", "composite_summary", "finish", "finish_context", "merge_shards",
           "robustness_metrics", "robustness_summary"]

STAGES = ("era-robustness", "era-composite", "mixing-adaptive")
"""The per-point stages (named as their commands; `tradeoff merge <stage>` finishes their shards)."""

ROBUSTNESS_COLUMNS = ["index", "label", "clean_prediction", "adv_prediction", "correct", "robust",
                      "robust_accurate", "robust_inaccurate", "flipped_by", "perturbation"]
"""Columns of robustness records (``x0``, ``x1`` follow when the 2-D coordinates are asked for)."""
COMPOSITE_COLUMNS = ["index", "label", "selected", "sound", "branch_prediction", "standard_prediction",
                     "prediction", "correct", "formula_correct", "formula_robust", "attack_robust", "robust",
                     "robust_accurate", "robust_inaccurate", "adv_prediction", "adv_selected", "fooled_by",
                     "perturbation", "selector_false_accept"]
"""Columns of the ERA composite's evaluation."""
ADAPTIVE_COLUMNS = ["index", "label", "clean_prediction", "autoattack_prediction", "adaptive_prediction",
                    "prediction", "correct", "correct_autoattack", "correct_adaptive", "perturbation",
                    "alpha_clean", "alpha_adaptive", "gamma_clean", "gamma_adaptive", "adaptive_w",
                    "adaptive_by", "standing_before_transfer"]
"""Columns of the mixing network's adaptive evaluation."""
ADAPTIVE_METRICS = (("accuracy", "correct"), ("accuracy_autoattack", "correct_autoattack"),
                    ("accuracy_adaptive_only", "correct_adaptive"), ("mean_alpha_clean", "alpha_clean"),
                    ("mean_alpha_attacked", "alpha_adaptive"), ("accuracy_before_transfer", "standing_before_transfer"))
"""Summary rows (evaluation ``adaptive``) of the adaptive evaluation: (metric, mean of this column)."""


# ----------------------------------------------------------------------------------------------------------
# Summary rows
# ----------------------------------------------------------------------------------------------------------


def robustness_metrics(correct: Sequence[bool] | np.ndarray, robust: Sequence[bool] | np.ndarray
                       ) -> dict[str, float]:
    """Robust accuracy, robust inaccuracy and the non-robust rate from per-sample indicators (Merkli et al.
    2023, Sec. 3).

    Guarantee: the three rates are non-negative and sum to 1; robust accuracy + robust inaccuracy equals
    the fraction of robust points, and robust accuracy ≤ clean accuracy.
    """
    c = np.asarray(correct, dtype=bool)
    r = np.asarray(robust, dtype=bool)
    if c.shape != r.shape:
        raise ValueError(f"correct {c.shape} and robust {r.shape} differ in shape")
    n = c.size
    if n == 0:
        return {"accuracy": math.nan, "robust_accuracy": math.nan, "robust_inaccuracy": math.nan,
                "non_robust": math.nan}
    return {
        "accuracy": float(c.mean()),
        "robust_accuracy": float((c & r).mean()),
        "robust_inaccuracy": float((~c & r).mean()),
        "non_robust": float((~r).mean()),
    }


def _bools(rows: Sequence[Mapping[str, Any]], key: str) -> np.ndarray:
    return np.array([int(float(r[key])) for r in rows], dtype=bool)


def _rate(rows: Sequence[Mapping[str, Any]], *keys: str) -> float:
    """Fraction of rows where every indicator column of ``keys`` is 1 (NaN without rows)."""
    hit = np.ones(len(rows), dtype=bool)
    for key in keys:
        hit &= _bools(rows, key)
    return float(hit.mean()) if len(rows) else float("nan")


def robustness_summary(dataset: str, name: str, threat: Threat, rows: Sequence[Mapping[str, Any]],
                       clean_row: bool) -> list[dict[str, Any]]:
    """Summary rows of robustness records: ``robustness`` / accuracy (= robust accuracy) and
    robust_inaccuracy (and ``clean`` / accuracy when asked)."""
    m = robustness_metrics(_bools(rows, "correct"), _bools(rows, "robust"))
    n = len(rows)
    out = [summary_row(dataset, name, "robustness", threat, "accuracy", m["robust_accuracy"], n),
           summary_row(dataset, name, "robustness", threat, "robust_inaccuracy", m["robust_inaccuracy"], n)]
    if clean_row:
        out.insert(0, summary_row(dataset, name, "clean", threat, "accuracy", m["accuracy"], n))
    return out


def composite_summary(dataset: str, name: str, threat: Threat, rows: Sequence[Mapping[str, Any]],
                      strong: bool) -> list[dict[str, Any]]:
    """Summary rows of the composite's records: ``clean`` accuracy, selection_rate, sound_selection_rate
    (and selector_false_accept_rate with a strong test); ``adaptive`` accuracy (robust and correct by both
    evaluations), robust_inaccuracy, formula_accuracy, attack_accuracy, accuracy_before_transfer."""
    n = len(rows)
    summary = [
        summary_row(dataset, name, "clean", threat, "accuracy", _rate(rows, "correct"), n),
        summary_row(dataset, name, "clean", threat, "selection_rate", _rate(rows, "selected"), n),
        summary_row(dataset, name, "clean", threat, "sound_selection_rate", _rate(rows, "sound"), n),
        summary_row(dataset, name, "adaptive", threat, "accuracy", _rate(rows, "robust_accurate"), n),
        summary_row(dataset, name, "adaptive", threat, "robust_inaccuracy", _rate(rows, "robust_inaccurate"), n),
        summary_row(dataset, name, "adaptive", threat, "formula_accuracy",
                    _rate(rows, "formula_correct", "formula_robust"), n),
        summary_row(dataset, name, "adaptive", threat, "attack_accuracy", _rate(rows, "correct", "attack_robust"),
                    n),
        summary_row(dataset, name, "adaptive", threat, "accuracy_before_transfer",
                    float(np.mean([int(float(r["correct"])) and (int(float(r["attack_robust"]))
                                                                 or str(r["fooled_by"]).startswith("transfer"))
                                   for r in rows])) if n else float("nan"), n),
    ]
    if strong:
        accepted = [r for r in rows if int(float(r["selected"]))]
        summary.append(summary_row(dataset, name, "clean", threat, "selector_false_accept_rate",
                                   _rate(accepted, "selector_false_accept"), len(accepted)))
    return summary


def adaptive_summary(dataset: str, name: str, threat: Threat, rows: Sequence[Mapping[str, Any]]
                     ) -> list[dict[str, Any]]:
    """Summary rows (evaluation ``adaptive``) of the adaptive evaluation: the mean of each column of
    :data:`ADAPTIVE_METRICS`, summed in the order of ``rows``."""
    n = len(rows)
    return [summary_row(dataset, name, "adaptive", threat, metric,
                        sum(float(r[col]) for r in rows) / n if n else float("nan"), n)
            for metric, col in ADAPTIVE_METRICS]


def _counts(values: Iterable[Any]) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        if v:
            out[str(v)] = out.get(str(v), 0) + 1
    return out


# ----------------------------------------------------------------------------------------------------------
# Finishing a job: summary rows and metadata from its rows
# ----------------------------------------------------------------------------------------------------------


def finish_context(stage: str, *, dataset: str, name: str, threat: Threat, meta: Mapping[str, Any],
                   config: Mapping[str, Any], seed: int, option: bool = False) -> dict[str, Any]:
    """The finish context of a ``stage`` job: dataset, classifier ``name``, threat, the stage's switch
    ``option`` (robustness: a ``clean`` row; era-composite: a strong robustness test was run), the
    row-independent metadata ``meta`` and the provenance's ``config`` and ``seed``. JSON-able."""
    if stage not in STAGES:
        raise ValueError(f"unknown per-point stage {stage!r} (known: {', '.join(STAGES)})")
    return {"stage": stage, "dataset": dataset, "classifier": name, "norm": threat.norm, "eps": float(threat.eps),
            "option": bool(option), "meta": dict(meta), "config": dict(config), "seed": seed}


def finish(context: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]
           ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(summary rows, metadata of the records file) of a complete job from its ``rows`` (sorted by index)
    and its finish context. Guarantee: a pure function of the context and the rows (the provenance aside),
    so merged shards get the summary and metadata of one unsharded job."""
    stage, dataset, name = context["stage"], str(context["dataset"]), str(context["classifier"])
    threat = Threat(str(context["norm"]), float(context["eps"]), None)
    extra: dict[str, Any] = {}
    if stage == "era-robustness":
        summary = robustness_summary(dataset, name, threat, rows, bool(context["option"]))
    elif stage == "era-composite":
        summary = composite_summary(dataset, name, threat, rows, bool(context["option"]))
    elif stage == "mixing-adaptive":
        summary = adaptive_summary(dataset, name, threat, rows)
        extra = {"adaptive_beats_autoattack": int(sum(int(r["correct_autoattack"]) - int(r["correct"])
                                                      for r in rows)),
                 "adaptive_by": _counts(r["adaptive_by"] for r in rows)}
    else:
        raise ValueError(f"unknown per-point stage {stage!r} (known: {', '.join(STAGES)})")
    meta = {**context["meta"], **extra, "summary_rows": summary,
            **provenance(context["config"], context["seed"])}
    return summary, meta


# ----------------------------------------------------------------------------------------------------------
# Shards
# ----------------------------------------------------------------------------------------------------------


def _read_rows(path: Path) -> tuple[list[dict[str, str]], dict[str, Any]]:
    """The rows (as written: strings) and sidecar of a records file, checked against the sidecar's checksum
    and row count."""
    meta = check_records(path)
    with open(path, encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    if len(rows) != meta.get("n_rows"):
        raise TradeoffError(f"{path}: {len(rows)} rows, metadata says {meta.get('n_rows')}")
    return rows, meta


SHARD_KEYS = ("stage", "run_key", "shards", "total", "batch_size", "columns")
"""Sidecar entries every shard of one job shares (``run_key``: the fingerprint of the unsharded job's inputs
and parameters)."""


def merge_shards(stage: str, paths: Sequence[str | Path], out: str | Path) -> list[dict[str, Any]]:
    """Merge the shard records ``paths`` of one ``stage`` job into its records ``out`` (and their sidecar);
    returns the summary rows.

    Guarantees: the records are the shards' rows sorted by index and the summary rows and metadata are
    :func:`finish`'s, as one unsharded job writes them (its metadata adds ``shards``). Raises
    :class:`TradeoffError` naming the file when a shard belongs to another stage or job (inputs, parameters,
    number of shards, batch size), is given twice, is missing (the file :func:`shard_path` names for ``out``)
    or does not hold exactly its chunks' points.
    """
    if not paths:
        raise TradeoffError(f"merge {stage}: no shard records given")
    found: dict[int, tuple[Path, list[dict[str, str]], dict[str, Any]]] = {}
    first: tuple[Path, dict[str, Any]] | None = None
    for p in map(Path, paths):
        rows, meta = _read_rows(p)
        if meta.get("stage") != stage or "shard" not in meta:
            raise TradeoffError(f"{p}: not a shard of a {stage} job (stage {meta.get('stage')!r})")
        if first is None:
            first = (p, meta)
        for key in SHARD_KEYS:
            if meta.get(key) != first[1].get(key):
                raise TradeoffError(f"{p}: {key} differs from {first[0]}'s: shards of different jobs")
        k = int(meta["shard"])
        if k in found:
            raise TradeoffError(f"{p}: shard {k} given twice (also {found[k][0]})")
        total, batch_size, shards = int(meta["total"]), int(meta["batch_size"]), int(meta["shards"])
        expected = shard_indices(total, batch_size, k, shards)
        if sorted(int(r["index"]) for r in rows) != expected:
            raise TradeoffError(f"{p}: its points are not those of shard {k} of {shards} (incomplete or foreign)")
        found[k] = (p, rows, meta)
    assert first is not None
    shards = int(first[1]["shards"])
    for k in range(shards):
        if k not in found:
            raise TradeoffError(f"{shard_path(out, k, shards)}: missing (shard {k} of {shards}; given "
                                f"{', '.join(str(p) for p in paths)})")
    rows = sorted((r for _, part, _ in found.values() for r in part), key=lambda r: int(r["index"]))
    summary, meta = finish(first[1]["finish"], rows)
    write_records(out, rows, {**meta, "shards": shards}, columns=first[1]["columns"])
    return summary
