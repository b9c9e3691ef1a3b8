"""The per-point worst case over several attacks on one classifier and threat.

A point counts as robust only if every attack left it classified correctly (Carlini et al. 2019,
"On Evaluating Adversarial Robustness", Sec. 3: report the minimum over a diverse set of attacks, per
example). The merge also names, per point, the first attack (in the order given) that broke it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import TradeoffError
from ..io import provenance, read_records, write_records
from ..records import RECORD_COLUMNS, accuracy_rows
from ..threat import Threat

log = logging.getLogger("tradeoff")

WORST_COLUMNS = ["index", "label", "clean_prediction", "prediction", "correct", "perturbation", "broken_by"]


class RecordMismatch(ValueError):
    """Record lists that do not describe the same points, labels, classifier or threat."""


def _key(rec: Mapping[str, Any]) -> tuple[int, int]:
    return int(rec["index"]), int(rec["label"])


def worst_case(attacks: Sequence[tuple[str, Sequence[Mapping[str, Any]]]]) -> list[dict[str, Any]]:
    """Merge per-point records ``(name, records)`` of several attacks on one classifier and threat.

    Each record has ``index``, ``label``, ``clean_prediction``, ``prediction``, ``correct`` and
    ``perturbation``. Per point (sorted by index) the result has ``correct`` = the minimum over the attacks,
    ``broken_by`` = ``"clean"`` if the point is misclassified clean, else the name of the first attack in
    ``attacks`` whose record has ``correct = 0``, else ``""``; ``prediction`` and ``perturbation`` are that
    attack's (the clean prediction and 0 where nothing broke the point, or for clean errors).

    Guarantee: ``correct = 1`` iff every attack's record says correct and the clean prediction equals the
    label; ``correct = 0`` ⇒ ``prediction != label`` whenever the breaking record is consistent. Raises
    :class:`RecordMismatch` naming the attack when the lists differ in points, labels or clean predictions.
    """
    if not attacks:
        raise RecordMismatch("no records to merge")
    ref_name, ref = attacks[0]
    ref_by = {int(r["index"]): r for r in ref}
    if len(ref_by) != len(ref):
        raise RecordMismatch(f"{ref_name}: duplicate point indices")
    tables = []
    for name, records in attacks:
        by = {int(r["index"]): r for r in records}
        if len(by) != len(records) or set(by) != set(ref_by):
            raise RecordMismatch(f"{name}: its points differ from those of {ref_name}")
        for i, r in by.items():
            if _key(r) != _key(ref_by[i]):
                raise RecordMismatch(f"{name}: label of point {i} differs from {ref_name}'s")
            if int(r["clean_prediction"]) != int(ref_by[i]["clean_prediction"]):
                raise RecordMismatch(f"{name}: clean prediction of point {i} differs from {ref_name}'s "
                                     "(records of another classifier?)")
        tables.append((name, by))
    out: list[dict[str, Any]] = []
    for i in sorted(ref_by):
        base = ref_by[i]
        label, clean = int(base["label"]), int(base["clean_prediction"])
        row = {"index": i, "label": label, "clean_prediction": clean, "prediction": clean,
               "correct": int(clean == label), "perturbation": 0.0, "broken_by": "" if clean == label else "clean"}
        if clean == label:
            for name, by in tables:
                r = by[i]
                if int(float(r["correct"])) == 0:
                    pert = float(r["perturbation"])
                    row.update(prediction=int(r["prediction"]), correct=0, broken_by=name,
                               perturbation=0.0 if math.isnan(pert) else pert)
                    break
        out.append(row)
    return out


def broken_by_counts(records: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """Points per ``broken_by`` value (robust points under ``""``)."""
    counts: dict[str, int] = {}
    for r in records:
        counts[str(r["broken_by"])] = counts.get(str(r["broken_by"]), 0) + 1
    return counts


def merge_inputs(path: str, threat: Threat) -> tuple[str, list[dict[str, Any]], dict[str, Any]]:
    """(attack name, per-point records in the evaluate layout, sidecar) of one record file for
    :func:`worst_case`. Records with a ``robust_accurate`` column (robustness records, the ERA composite's)
    count a point as correct only when robust and accurate. Raises :class:`TradeoffError` naming ``path``
    when its threat differs from ``threat`` or it is not a per-point attack record."""
    frame, meta = read_records(path)
    if meta.get("attack") == "eps-sweep":
        raise TradeoffError(f"{path}: an ε-sweep has one block per budget; merge single-threat records only")
    if meta.get("norm") != threat.norm or not math.isclose(float(meta.get("eps", math.nan)), threat.eps):
        raise TradeoffError(f"{path}: threat {meta.get('norm')} ε={meta.get('eps')} differs from {threat.norm} "
                            f"ε={threat.eps}")
    cols = set(frame.columns)
    if "robust_accurate" in cols:
        clean = frame["clean_prediction"] if "clean_prediction" in cols else frame["prediction"]
        frame = frame.assign(clean_prediction=clean, correct=frame["robust_accurate"],
                             prediction=frame["adv_prediction"].where(frame["robust_accurate"] == 0, clean))
    missing = set(RECORD_COLUMNS) - set(frame.columns)
    if missing:
        raise TradeoffError(f"{path}: not a per-point attack record (no {', '.join(sorted(missing))})")
    name = str(meta.get("attack") or Path(path).stem)
    return name, frame[RECORD_COLUMNS].to_dict("records"), meta


def write_worst(inputs: Sequence[str], name: str, threat: Threat, threat_spec: Mapping[str, Any],
                out: str | Path) -> list[dict[str, Any]]:
    """Write the per-point worst case (:data:`WORST_COLUMNS`, :func:`worst_case`) of the record files
    ``inputs`` of classifier ``name`` to ``out``; its sidecar holds the summary row (evaluation ``worst``),
    the points each attack broke first (``broken_by``) and each input's own accuracy. Returns the summary
    rows. Raises :class:`TradeoffError` naming the file when the inputs differ in threat, dataset,
    classifier (``classifier_sha256``) or points."""
    merged: list[tuple[str, list[dict[str, Any]]]] = []
    metas: list[dict[str, Any]] = []
    for path in inputs:
        attack, recs, meta = merge_inputs(path, threat)
        if attack in {m for m, _ in merged}:
            attack = f"{attack}:{Path(path).stem}"
        if metas and meta.get("dataset") != metas[0].get("dataset"):
            raise TradeoffError(f"{path}: dataset {meta.get('dataset')} differs from {metas[0].get('dataset')}")
        sha, ref_sha = meta.get("classifier_sha256"), metas[0].get("classifier_sha256") if metas else None
        if sha is not None and ref_sha is not None and sha != ref_sha:
            raise TradeoffError(f"{path}: made for another classifier than {inputs[0]} (classifier_sha256)")
        merged.append((attack, recs))
        metas.append(meta)
    try:
        records = worst_case(merged)
    except RecordMismatch as exc:
        bad = next((p for (n, _), p in zip(merged, inputs, strict=True) if str(exc).startswith(f"{n}:")), inputs[0])
        raise TradeoffError(f"{bad}: {exc}") from None
    dataset = str(metas[0].get("dataset", ""))
    rows = accuracy_rows(dataset, name, "worst", threat, records)
    counts = broken_by_counts(records)
    write_records(out, records, {
        "attack": "worst", "norm": threat.norm, "eps": threat.eps, "dataset": dataset, "classifier": name,
        "attacks": [n for n, _ in merged], "inputs": list(inputs), "broken_by": counts,
        "accuracy_by_attack": {n: sum(int(r["correct"]) for r in recs) / max(1, len(recs)) for n, recs in merged},
        "classifier_sha256": metas[0].get("classifier_sha256"), "summary_rows": rows,
        **provenance({"attack": "worst", "threat": threat_spec, "inputs": list(inputs)}, None),
    }, columns=WORST_COLUMNS)
    log.info("%s / worst: accuracy %.4f on %d points; broken by %s", name, rows[0]["value"], rows[0]["n"], counts)
    return rows
