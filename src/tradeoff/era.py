"""The ERA stage's evaluations (Merkli et al., "Just Avoid Robust Inaccuracy", 2023): per-point robustness
records of a model and the evaluation of the compositional classifier, each a resumable per-point job
(:mod:`tradeoff.resume`) whose record columns and summary rows are declared in the torch-free
:mod:`tradeoff.point_records` (a merge of shards computes them without torch).

* :func:`robustness_records`: per test point, an attack towards changing the model's own prediction
  (:func:`~tradeoff.abstain.robustness_test`); robust accuracy is 1[ŷ = y]·robust, robust inaccuracy
  1[ŷ ≠ y]·robust (Merkli et al., Sec. 3).
* :func:`composite_evaluation`: the compositional classifier's clean decision, the reference code's
  joined-records robustness (selector at 2ε, the parts' robustness records at ε) and the end-to-end adaptive
  attack (:func:`~tradeoff.attacks.adaptive.era_adaptive_attack`); a point is robust only if both say so.

The methods themselves (robustness test, selectors, composition) are in :mod:`tradeoff.abstain`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .abstain import (
    Composite,
    RobustnessAttack,
    clean_decision,
    compositional_indicators,
    robustness_test,
)
from .attacks.adaptive import AdaptiveAttack, era_adaptive_attack
from .attacks.evaluate import perturbation_size
from .attacks.pgd import Threat
from .data import Splits
from .errors import TradeoffError
from .io import read_records, write_records
from .point_records import (
    COMPOSITE_COLUMNS,
    ROBUSTNESS_COLUMNS,
    composite_summary,
    finish_context,
    robustness_summary,
)
from .predict import predict
from .resume import PointJob, StageOutput, chunk_generator, stage_output

__all__ = ["COMPOSITE_COLUMNS", "ROBUSTNESS_COLUMNS", "composite_evaluation", "composite_summary",
           "robustness_records", "robustness_summary", "write_grid"]

# ----------------------------------------------------------------------------------------------------------
# Robustness records
# ----------------------------------------------------------------------------------------------------------


def label_attack_flips(path: str, threat: Threat, n: int
                       ) -> tuple[str, np.ndarray, np.ndarray, np.ndarray, np.ndarray, str]:
    """(attack name, clean predictions, flipped, attacked predictions, perturbation sizes, checksum of the
    records) of a label-attack evaluation. On a correctly classified point a label flip is a change of the
    model's own prediction, hence a proof of non-robustness; on a wrong point such records say nothing (the
    attack is not run)."""
    frame, meta = read_records(path)
    if meta.get("norm") != threat.norm or not math.isclose(float(meta.get("eps", -1)), threat.eps):
        raise TradeoffError(f"{path}: threat {meta.get('norm')} ε={meta.get('eps')} differs from {threat}")
    frame = frame.set_index("index").sort_index()
    if list(frame.index) != list(range(n)):
        raise TradeoffError(f"{path}: expected one record per test point 0..{n - 1}")
    clean, label, pred = (frame[k].to_numpy() for k in ("clean_prediction", "label", "prediction"))
    flipped = (clean == label) & (pred != label)
    return (str(meta.get("attack", path)), clean, flipped, pred, frame["perturbation"].to_numpy(),
            str(meta.get("sha256")))


def robustness_records(model: torch.nn.Module, splits: Splits, threat: Threat, params: Mapping[str, Any], *,
                       name: str, classifier_sha256: str | None, threat_spec: Mapping[str, Any], out: str | Path,
                       seed: int, batch_size: int, device: torch.device, combine: Sequence[str] = (),
                       combine_decides_correct: bool = False, coordinates: bool = False, clean_row: bool = False,
                       stop_after: int | None = None, shard: int = 0, shards: int | None = None) -> StageOutput:
    """Robustness records of ``model`` on the test split, written to ``out`` as a resumable job.

    Per point: the attack of ``params`` (:class:`~tradeoff.abstain.RobustnessAttack`) towards changing the
    model's own prediction; a flip of a correctly classified point found by a label attack of ``combine``
    (records of the same model and threat) counts too. With ``combine_decides_correct`` a correctly
    classified point is not attacked again: its prediction is its label, so "no perturbation in the ball
    changes the prediction" is the event the label attacks of ``combine`` (the evaluation's whole suite) test,
    and they decide it; the own-prediction attack runs on the misclassified points only (where the two tests
    differ). Guarantees: ``robust_accurate = correct·robust``,
    ``robust_inaccurate = (1 − correct)·robust``; the chunk starting at index ``s`` draws from
    ``chunk_generator(seed, s)`` (and pyautoattack from ``seed + s``), so the records do not depend on
    where a previous run was killed. With ``shards`` (even 1) only shard ``shard``'s chunks are run
    (:class:`~tradeoff.resume.PointJob`); its rows are those of the whole job's at the same indices.
    """
    attack = RobustnessAttack.from_mapping(params)
    x, y = splits.x("test"), splits.y("test")
    flips = [label_attack_flips(path, threat, len(y)) for path in combine]
    if combine_decides_correct and not flips:
        raise TradeoffError("robustness: --combine-decides-correct needs the label attacks' records (--combine)")
    run = {"evaluation": "robustness", "combine_decides_correct": combine_decides_correct,
           "classifier_sha256": classifier_sha256,
           "data_sha256": splits.meta.get("sha256"), "threat": [threat.norm, threat.eps, threat.bounds],
           "params": dict(params), "combine": [f[5] for f in flips], "coordinates": coordinates, "seed": seed,
           "batch_size": batch_size}
    columns = ROBUSTNESS_COLUMNS + (["x0", "x1"] if coordinates else [])
    job = PointJob(out, columns, run, len(y), batch_size, stop_after, shard, shards)
    for idx in job.chunks():
        start = int(idx[0])
        clean_pred = predict(model, x[idx], len(idx), device)
        attacked = (clean_pred != y[idx]) if combine_decides_correct else torch.ones(len(idx), dtype=torch.bool)
        own: dict[int, tuple[bool, int, str, float]] = {}  # test index → (robust, adv prediction, by, size)
        if bool(attacked.any()):
            sub = idx[attacked]
            res = robustness_test(model, x[sub], threat, attack, generator=chunk_generator(seed, start),
                                  seed=seed + start, device=device)
            size = perturbation_size(x[sub], res.x_adv, threat.norm)
            for j, i in enumerate(sub.tolist()):
                own[i] = (bool(res.robust[j]), int(res.adv_prediction[j]), res.flipped_by[j], float(size[j]))
        for j, i in enumerate(idx.tolist()):
            correct = bool(clean_pred[j] == y[i])
            robust, adv, by, pert = own.get(i, (True, int(clean_pred[j]), "", 0.0))
            for attack_name, clean, flipped, pred, dist, _ in flips:
                if clean[i] != int(clean_pred[j]):
                    raise TradeoffError(f"--combine {attack_name}: clean prediction of point {i} differs "
                                     "(another model?)")
                if robust and flipped[i]:
                    robust, adv, by, pert = False, int(pred[i]), attack_name, float(dist[i])
            row = {"index": i, "label": int(y[i]), "clean_prediction": int(clean_pred[j]),
                   "adv_prediction": adv, "correct": int(correct), "robust": int(robust),
                   "robust_accurate": int(correct and robust), "robust_inaccurate": int(robust and not correct),
                   "flipped_by": by, "perturbation": pert}
            if coordinates:
                row.update(x0=float(x[i].flatten()[0]), x1=float(x[i].flatten()[1]))
            job.add(row)
    meta = {"attack": "robustness", "norm": threat.norm, "eps": threat.eps, "params": dict(params),
            "combined_with": list(combine), "combine_decides_correct": combine_decides_correct,
            "dataset": splits.name, "classifier": name, "classifier_sha256": classifier_sha256}
    return stage_output(job, finish_context(
        "era-robustness", dataset=splits.name, name=name, threat=threat, option=clean_row, meta=meta,
        config={"attack": "robustness", "threat": dict(threat_spec), "params": dict(params)}, seed=seed))


def write_grid(model: torch.nn.Module, x: torch.Tensor, size: int, out: str | Path, device: torch.device,
               meta: Mapping[str, Any]) -> None:
    """Predictions of ``model`` on a ``size``×``size`` grid covering the 2-D points ``x`` (with a margin of
    10% of their range), as per-point records (x0, x1, prediction)."""
    if x[0].numel() != 2:
        raise ValueError(f"a decision-region grid needs 2-D inputs, got {x[0].numel()} dimensions")
    flat = x.reshape(len(x), 2)
    lo, hi = flat.min(0).values, flat.max(0).values
    pad = 0.1 * (hi - lo)
    g0 = torch.linspace(float(lo[0] - pad[0]), float(hi[0] + pad[0]), size)
    g1 = torch.linspace(float(lo[1] - pad[1]), float(hi[1] + pad[1]), size)
    mesh = torch.cartesian_prod(g0, g1)
    pred = predict(model, mesh.reshape(-1, *x.shape[1:]), 4096, device)
    rows = [{"x0": float(a), "x1": float(b), "prediction": int(p)}
            for (a, b), p in zip(mesh.tolist(), pred.tolist(), strict=True)]
    write_records(out, rows, {**meta, "grid_size": size}, columns=["x0", "x1", "prediction"])


# ----------------------------------------------------------------------------------------------------------
# The compositional classifier
# ----------------------------------------------------------------------------------------------------------


def _records_by_index(path: str, n: int) -> tuple[dict[str, np.ndarray], str]:
    """(clean_prediction, correct, robust columns by test index, checksum) of robustness records."""
    frame, meta = read_records(path)
    frame = frame.set_index("index").sort_index()
    if len(frame) != n or list(frame.index) != list(range(n)):
        raise TradeoffError(f"{path}: expected one record per test point 0..{n - 1}")
    return {k: frame[k].to_numpy() for k in ("clean_prediction", "correct", "robust")}, str(meta.get("sha256"))


def _check_predictions(pred: torch.Tensor, recorded: np.ndarray, path: str) -> None:
    if not np.array_equal(pred.cpu().numpy(), recorded):
        raise TradeoffError(f"{path}: its clean predictions differ from the model's (records of another model?)")


def composite_evaluation(composite: Composite, spec: Mapping[str, Any], splits: Splits, threat: Threat, *,
                         name: str, params: Mapping[str, Any], suite: Mapping[str, Any],
                         strong: Mapping[str, Any] | None, robust_records: str, standard_records: str,
                         out: str | Path, seed: int, batch_size: int, device: torch.device,
                         stop_after: int | None = None, shard: int = 0, shards: int | None = None) -> StageOutput:
    """Per test point: the composite's clean prediction (runtime selector), the reference code's
    joined-records robustness (selector at 2ε, parts' robustness records at ε) and the end-to-end adaptive
    attack, written to ``out`` as a resumable job.

    Guarantees: a point counts as robust only if both evaluations say so, and robust accuracy also needs the
    formula's correctness (so it is at most both the formula's and the attack's robust accuracy); the chunk
    starting at ``s`` draws the clean decision from ``chunk_generator(seed + 1, s)`` and the attack from
    ``chunk_generator(seed, s)``, so the records do not depend on where a previous run was killed. With
    ``shards`` (even 1) only shard ``shard``'s chunks are run (:class:`~tradeoff.resume.PointJob`).
    """
    attack = AdaptiveAttack.from_mapping({**params, **suite})
    strong_attack = None if strong is None else RobustnessAttack.from_mapping(strong)
    x, y = splits.x("test"), splits.y("test")
    rob, rob_sha = _records_by_index(robust_records, len(y))
    std, std_sha = _records_by_index(standard_records, len(y))
    run = {"evaluation": "era-composite", "classifier_sha256": spec.get("sha256"), "selector": spec["selector"],
           "data_sha256": splits.meta.get("sha256"), "threat": [threat.norm, threat.eps, threat.bounds],
           "robust_records_sha256": rob_sha, "standard_records_sha256": std_sha, "params": dict(params),
           "suite": dict(suite), "strong": strong, "seed": seed, "batch_size": batch_size}
    job = PointJob(out, COMPOSITE_COLUMNS, run, len(y), batch_size, stop_after, shard, shards)
    for idx in job.chunks():
        xb, yb = x[idx].to(device), y[idx].to(device)
        i_np = idx.numpy()
        dec = clean_decision(composite, xb, strong_attack, generator=chunk_generator(seed + 1, int(idx[0])),
                             seed=seed + int(idx[0]))
        _check_predictions(dec.standard_prediction, std["clean_prediction"][i_np], standard_records)
        if dec.branch_certified is None:
            _check_predictions(dec.branch_prediction, rob["clean_prediction"][i_np], robust_records)
            rob_branch = rob["robust"][i_np].astype(bool)
        else:  # the smoothed branch model is robust at ε where its certificate covers the ε-ball
            rob_branch = dec.branch_certified.cpu().numpy()
        acc_branch = (dec.branch_prediction == yb).cpu().numpy()
        formula_correct, formula_robust = compositional_indicators(
            dec.sound.cpu().numpy(), acc_branch, rob_branch, std["correct"][i_np].astype(bool),
            std["robust"][i_np].astype(bool))
        pred = dec.prediction
        res = era_adaptive_attack(composite, xb, pred, threat, attack, generator=chunk_generator(seed, int(idx[0])))
        size = perturbation_size(xb.cpu(), res.x_adv, threat.norm)
        for j, i in enumerate(idx.tolist()):
            correct, attack_robust = bool(pred[j] == yb[j]), not bool(res.fooled[j])
            robust = bool(formula_robust[j]) and attack_robust
            job.add({
                "index": i, "label": int(y[i]), "selected": int(dec.selected[j]), "sound": int(dec.sound[j]),
                "branch_prediction": int(dec.branch_prediction[j]),
                "standard_prediction": int(dec.standard_prediction[j]), "prediction": int(pred[j]),
                "correct": int(correct), "formula_correct": int(formula_correct[j]),
                "formula_robust": int(formula_robust[j]), "attack_robust": int(attack_robust),
                "robust": int(robust), "robust_accurate": int(correct and robust and bool(formula_correct[j])),
                "robust_inaccurate": int(robust and not correct), "adv_prediction": int(res.prediction[j]),
                "adv_selected": int(res.selected[j]), "fooled_by": res.path[j], "perturbation": float(size[j]),
                "selector_false_accept": "" if dec.strong_flip_eps is None
                else int(bool(dec.selected[j]) and bool(dec.strong_flip_eps[j])),
            })
    meta = {"attack": "adaptive", "norm": threat.norm, "eps": threat.eps, "params": dict(params),
            "suite": dict(suite), "strong": strong, "selector": spec["selector"], "dataset": splits.name,
            "classifier": name, "classifier_sha256": spec.get("sha256")}
    return stage_output(job, finish_context(
        "era-composite", dataset=splits.name, name=name, threat=threat, option=strong_attack is not None,
        meta=meta, config={"attack": "adaptive", "params": dict(params), "selector": spec["selector"],
                           "threat": spec["threat"]}, seed=seed))
