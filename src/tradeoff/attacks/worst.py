"""The per-point worst case over several attacks on one classifier and threat.

A point counts as robust only if every attack left it classified correctly (Carlini et al. 2019,
"On Evaluating Adversarial Robustness", Sec. 3: report the minimum over a diverse set of attacks, per
example). The merge also names, per point, the first attack (in the order given) that broke it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

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
