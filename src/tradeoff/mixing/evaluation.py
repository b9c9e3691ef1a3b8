"""The mixing stage's evaluation records: the adaptive evaluation of the mixing network (a resumable per-point
job, :mod:`tradeoff.resume`; AutoAttack joined with the adaptive attack that also drives α down) and the
robust model's probability margins (``mixing-margins``)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..attacks.adaptive import CompositeSuite, mixnet_evaluation_attack
from ..attacks.evaluate import perturbation_size
from ..attacks.pgd import Threat, attack_model
from ..classifiers import load_classifier, load_spec
from ..data import Splits
from ..data import load as load_splits
from ..io import ArtifactError, provenance, read_records, write_records
from ..point_records import ADAPTIVE_COLUMNS, finish_context
from ..records import summary_row
from ..resume import PointJob, StageOutput, chunk_generator, stage_output
from .model import MixedClassifier
from .spec import resolve_temperatures

log = logging.getLogger("tradeoff")


# ----------------------------------------------------------------------------------------------------------
# Evaluation records of the mixing stage: the adaptive evaluation (Bai et al. 2024) and the robust model's margins
# ----------------------------------------------------------------------------------------------------------


def probability_margin(logits: torch.Tensor, temp: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """``(prediction, μ)``, ``μ = p_top − p_second`` of ``σ(temp·logits)`` (the margin of Bai et al. 2023), in
    [0, 1]."""
    p = F.softmax(temp * logits, dim=1)
    top2 = p.topk(2, dim=1)
    return top2.indices[:, 0], top2.values[:, 0] - top2.values[:, 1]

MARGIN_COLUMNS = ["index", "label", "clean_prediction", "clean_margin", "clean_correct", "adv_prediction",
                  "adv_margin", "adv_correct", "perturbation"]
"""Columns of :func:`margin_records`."""


def adaptive_evaluation(model: MixedClassifier, spec: Mapping[str, Any], splits: Splits, threat: Threat, *,
                        name: str, autoattack: str, params: Mapping[str, Any], suite: Mapping[str, Any],
                        threat_spec: Mapping[str, Any], out: str | Path, seed: int, batch_size: int,
                        device: torch.device, stop_after: int | None = None, shard: int = 0,
                        shards: int | None = None) -> StageOutput:
    """The mixing network's adaptive evaluation, written to ``out`` as a resumable job: per test point the
    worst case of its AutoAttack record (``autoattack``, of the same classifier) and
    :func:`~tradeoff.attacks.adaptive.mixnet_evaluation_attack` (the CE + w·BCE attack over ``params["w"]``
    and the composite suite of ``suite``), with α(x) and γ(x) on the clean and the attacked input.

    Guarantees: ``correct = correct_autoattack · correct_adaptive`` (a clean error stays an error); the chunk
    starting at ``s`` draws from ``chunk_generator(seed, s, bits=32)`` on the CPU, so the records do not
    depend on where a previous run was killed. With ``shards`` (even 1) only shard ``shard``'s chunks are run
    (:class:`~tradeoff.resume.PointJob`). Raises :class:`~tradeoff.io.ArtifactError` if the AutoAttack
    record belongs to another classifier or split.
    """
    aa, aa_meta = read_records(autoattack)
    if aa_meta.get("classifier_sha256") != spec["sha256"]:
        raise ArtifactError(f"{autoattack}: made for another version of the classifier {name}")
    x, y = splits.x("test"), splits.y("test")
    if len(aa) != y.shape[0] or not np.array_equal(aa["label"].to_numpy(), y.numpy()):
        raise ArtifactError(f"{autoattack}: its points are not this test split")
    aa_pred = torch.tensor(aa["prediction"].to_numpy())
    aa_size = torch.tensor(aa["perturbation"].to_numpy(), dtype=torch.float32)
    composite_suite = CompositeSuite.from_mapping(suite)
    ws = params["w"] if isinstance(params["w"], list) else [params["w"]]
    run = {"evaluation": "adaptive", "classifier_sha256": spec["sha256"], "data_sha256": splits.meta.get("sha256"),
           "autoattack_sha256": aa_meta.get("sha256"), "threat": [threat.norm, threat.eps, threat.bounds],
           "params": dict(params), "suite": dict(suite), "seed": seed, "batch_size": batch_size}
    job = PointJob(out, ADAPTIVE_COLUMNS, run, int(y.shape[0]), batch_size, stop_after, shard, shards)
    for chunk in job.chunks():
        idx = chunk.tolist()
        gen = chunk_generator(seed, idx[0], bits=32) if device.type == "cpu" else None
        xb, yb = x[idx].to(device), y[idx].to(device)
        with torch.no_grad():
            clean = model.forward_all(xb)
        alive = (clean.out.argmax(1) == yb) & torch.tensor([bool(aa_pred[i] == y[i]) for i in idx], device=yb.device)
        res = mixnet_evaluation_attack(model, xb, yb, threat, params, composite_suite, alive, generator=gen)
        with torch.no_grad():
            adv = model.forward_all(res.x_adv)
        clean_pred, adv_pred = clean.out.argmax(1).cpu(), adv.out.argmax(1).cpu()
        adv_pred = torch.where(clean_pred == yb.cpu(), adv_pred, clean_pred)  # clean errors stay errors
        size = perturbation_size(xb, res.x_adv, threat.norm).cpu()
        for j, i in enumerate(idx):
            ok_aa, ok_ad = int(aa_pred[i] == y[i]), int(adv_pred[j] == y[i])
            worst = aa_pred[i] if not ok_aa else adv_pred[j]
            k = int(res.broken_by[j])
            job.add({
                "index": i, "label": int(y[i]), "clean_prediction": int(clean_pred[j]),
                "autoattack_prediction": int(aa_pred[i]), "adaptive_prediction": int(adv_pred[j]),
                "prediction": int(worst), "correct": ok_aa * ok_ad, "correct_autoattack": ok_aa,
                "correct_adaptive": ok_ad, "perturbation": float(aa_size[i] if not ok_aa else size[j]),
                "alpha_clean": float(clean.alpha[j]), "alpha_adaptive": float(adv.alpha[j]),
                "gamma_clean": float(clean.gamma[j]), "gamma_adaptive": float(adv.gamma[j]),
                "adaptive_w": float(ws[k]) if k >= 0 and clean_pred[j] == y[i] else "",
                "adaptive_by": res.path[j] if clean_pred[j] == y[i] and ok_ad == 0 else "",
                "standing_before_transfer": int(res.standing_before_transfer[j]),
            })
    meta = {
        "attack": "adaptive", "norm": threat.norm, "eps": threat.eps, "params": dict(params),
        "dataset": splits.name, "classifier": name, "classifier_sha256": spec["sha256"],
        "alpha_range": [spec["network"]["alpha_min"], spec["network"]["alpha_max"]],
        "autoattack_record": str(autoattack), "autoattack_flags": aa_meta.get("flags", {}),
        "autoattack_warnings": aa_meta.get("warnings", []),
        "autoattack_accuracy_by_attack": aa_meta.get("accuracy_by_attack", {}), "suite": dict(suite),
    }  # the rows add adaptive_beats_autoattack and adaptive_by (tradeoff.point_records.finish)
    return stage_output(job, finish_context(
        "mixing-adaptive", dataset=splits.name, name=name, threat=threat, meta=meta,
        config={"attack": "adaptive", "threat": dict(threat_spec), "params": dict(params)}, seed=seed))


def margin_records(model: nn.Module, splits: Splits, threat: Threat, params: Mapping[str, Any], temp: float, *,
                   name: str, classifier_sha256: str | None, threat_spec: Mapping[str, Any], seed: int,
                   batch_size: int, device: torch.device) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(records with :data:`MARGIN_COLUMNS`, metadata with the summary rows) of ``model``'s probability margin
    (:func:`probability_margin` at inverse temperature ``temp``) on the clean test points and on PGD points
    (``params``: steps, step_rel, restarts, loss) of the clean-correct ones; clean errors are not attacked.
    One generator seeded by ``seed`` runs through the batches in order."""
    x, y = splits.x("test"), splits.y("test")
    steps = int(params.get("steps", 20))
    gen = torch.Generator(device="cpu").manual_seed(seed)
    rows: list[dict[str, Any]] = []
    for start in range(0, y.shape[0], batch_size):
        xb, yb = x[start:start + batch_size].to(device), y[start:start + batch_size].to(device)
        with torch.no_grad():
            c_pred, c_margin = probability_margin(model(xb), temp)
        step = float(params.get("step_rel", 2.5 / steps)) * threat.eps
        x_adv = attack_model(model, xb, yb, threat, steps=steps, step_size=step,
                             restarts=int(params.get("restarts", 1)), loss=str(params.get("loss", "ce")),
                             generator=gen if device.type == "cpu" else None)
        keep = (c_pred == yb).view(-1, *([1] * (xb.ndim - 1)))
        x_adv = torch.where(keep, x_adv, xb)  # only clean-correct points are attacked
        with torch.no_grad():
            a_pred, a_margin = probability_margin(model(x_adv), temp)
        size = perturbation_size(xb, x_adv, threat.norm).cpu()
        for j in range(xb.shape[0]):
            rows.append({"index": start + j, "label": int(yb[j]), "clean_prediction": int(c_pred[j]),
                         "clean_margin": float(c_margin[j]), "clean_correct": int(c_pred[j] == yb[j]),
                         "adv_prediction": int(a_pred[j]), "adv_margin": float(a_margin[j]),
                         "adv_correct": int(a_pred[j] == yb[j]), "perturbation": float(size[j])})
    right_adv = [r["adv_margin"] for r in rows if r["adv_correct"]]
    wrong_clean = [r["clean_margin"] for r in rows if not r["clean_correct"]]
    summary = [
        summary_row(splits.name, name, "margin", threat, "mean_margin_correct_attacked",
                    float(np.mean(right_adv)) if right_adv else float("nan"), len(right_adv)),
        summary_row(splits.name, name, "margin", threat, "mean_margin_wrong_clean",
                    float(np.mean(wrong_clean)) if wrong_clean else float("nan"), len(wrong_clean)),
    ]
    meta = {
        "attack": "pgd", "norm": threat.norm, "eps": threat.eps, "params": dict(params), "temp": temp,
        "dataset": splits.name, "classifier": name, "classifier_sha256": classifier_sha256, "summary_rows": summary,
        **provenance({"threat": dict(threat_spec), "params": dict(params), "temp": temp}, seed),
    }
    return rows, meta


def write_margins(data: str | Path, classifier: str | Path, out: str | Path, *, name: str,
                  threat: Mapping[str, Any], params: Mapping[str, Any], seed: int, batch_size: int,
                  device: torch.device, temp: float = 1.0, temperatures: str | Path | None = None
                  ) -> list[dict[str, Any]]:
    """The ``mixing-margins`` stage: :func:`margin_records` of ``classifier`` on the test split of ``data`` at
    ``threat`` (``{norm, eps}``), at inverse temperature ``temp`` or the ``temp_h`` of ``temperatures`` (fitted
    for ``classifier`` as the robust model), written to ``out`` (:data:`MARGIN_COLUMNS`). Returns the summary
    rows (mean margin of the correct-under-attack points, then of the wrong-clean ones)."""
    _, temp = resolve_temperatures(temperatures, temp, temp, robust=classifier)
    splits = load_splits(data)
    rows, meta = margin_records(
        load_classifier(classifier, device), splits, Threat(str(threat["norm"]), float(threat["eps"]), splits.bounds),
        params, temp, name=name, classifier_sha256=load_spec(classifier).get("sha256"), threat_spec=threat,
        seed=seed, batch_size=batch_size, device=device)
    write_records(out, rows, meta, columns=MARGIN_COLUMNS)
    summary = meta["summary_rows"]
    log.info("%s: mean probability margin %.3f on %d correct-under-attack points, %.3f on %d wrong-clean",
             name, summary[0]["value"], summary[0]["n"], summary[1]["value"], summary[1]["n"])
    return summary
