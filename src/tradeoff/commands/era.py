"""ERA stage: robustness records (attack towards the own prediction), the compositional classifier
``era-composite`` (its description, its joined and end-to-end adaptive evaluation)."""

from __future__ import annotations

import argparse
import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from .. import data as data_mod
from ..abstain import (
    RobustnessAttack,
    clean_decision,
    compositional_indicators,
    robustness_metrics,
    robustness_test,
)
from ..attacks.adaptive import AdaptiveAttack, era_adaptive_attack
from ..attacks.pgd import Threat
from ..classifiers import load_classifier, load_spec
from ..evaluate import perturbation_size, predict, summary_row
from ..io import ResumableCSV, provenance, read_json, read_records, sidecar, write_json, write_records
from .common import add_runtime_args, json_arg, runtime, threat_from

log = logging.getLogger("tradeoff")

ROBUSTNESS_COLUMNS = ["index", "label", "clean_prediction", "adv_prediction", "correct", "robust",
                      "robust_accurate", "robust_inaccurate", "flipped_by", "perturbation"]
COMPOSITE_COLUMNS = ["index", "label", "selected", "sound", "branch_prediction", "standard_prediction",
                     "prediction", "correct", "formula_correct", "formula_robust", "attack_robust", "robust",
                     "robust_accurate", "robust_inaccurate", "adv_prediction", "adv_selected", "fooled_by",
                     "perturbation", "selector_false_accept"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("robustness", help="robust accuracy / inaccuracy: attack each point towards changing "
                                          "the model's own prediction")
    add_runtime_args(p)
    p.add_argument("--data", required=True)
    p.add_argument("--classifier", required=True, help="classifier JSON")
    p.add_argument("--name", required=True, help="classifier id for the summary")
    p.add_argument("--threat", type=json_arg, required=True, help='{"norm": "Linf", "eps": 0.3}')
    p.add_argument("--params", type=json_arg, default={}, help="the attack (JSON: steps, step_rel, restarts, "
                                                               "apgd, apgd_iter)")
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--combine", nargs="*", default=[], help="records of label attacks (evaluate) on the same model "
                   "and threat: their flips of correctly classified points count too")
    p.add_argument("--clean-row", action="store_true", help="also put the clean accuracy into the summary")
    p.add_argument("--coordinates", action="store_true", help="add the 2-D input coordinates as x0, x1")
    p.add_argument("--grid-out", default=None, help="also write the predictions on a grid (2-D data)")
    p.add_argument("--grid-size", type=int, default=200)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_robustness)

    p = sub.add_parser("era-composite-spec", help="describe the compositional classifier (robust model, "
                                                  "standard model, robustness-indicator selector)")
    p.add_argument("--data", required=True, help="dataset artifact (for its input bounds)")
    p.add_argument("--robust", required=True, help="classifier JSON of the robust (branch) model")
    p.add_argument("--standard", required=True, help="classifier JSON of the standard (trunk) model")
    p.add_argument("--selector", type=json_arg, required=True, help="selector description (JSON)")
    p.add_argument("--threat", type=json_arg, required=True)
    p.add_argument("--name", default="era-composite")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_composite_spec)

    p = sub.add_parser("era-composite", help="evaluate the compositional classifier: joined records and the "
                                             "end-to-end adaptive attack")
    add_runtime_args(p)
    p.add_argument("--data", required=True)
    p.add_argument("--classifier", required=True, help="composite JSON (era-composite-spec)")
    p.add_argument("--name", default="era-composite")
    p.add_argument("--robust-records", required=True, help="robustness records of the robust model")
    p.add_argument("--standard-records", required=True, help="robustness records of the standard model")
    p.add_argument("--params", type=json_arg, default={}, help="adaptive attack (JSON: steps, step_rel, "
                                                               "restarts, lambdas)")
    p.add_argument("--suite", type=json_arg, default={}, help="attacks every composite gets (JSON: targets, "
                   "transfer, suite_steps, suite_step_rel, target_restarts, transfer_restarts); {} = none")
    p.add_argument("--strong", type=json_arg, default=None, help="the strong robustness test (JSON, as "
                   "`robustness --params`) for the offline 2ε soundness check and the selector's false-accept "
                   "rate; absent = the runtime selector's own test only")
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_composite)


def _chunk_generator(seed: int, start: int) -> torch.Generator:
    """A CPU generator for the chunk that starts at test index ``start`` (same numbers after a resume)."""
    state = np.random.SeedSequence([int(seed), int(start)]).generate_state(1, dtype=np.uint64)
    return torch.Generator(device="cpu").manual_seed(int(state[0]))


def _todo_chunks(done: set[str], n: int, batch_size: int) -> list[torch.Tensor]:
    todo = [i for i in range(n) if str(i) not in done]
    return [torch.tensor(todo[i:i + batch_size], dtype=torch.long) for i in range(0, len(todo), batch_size)]


def _bools(rows: Sequence[Mapping[str, Any]], key: str) -> np.ndarray:
    return np.array([int(float(r[key])) for r in rows], dtype=bool)


def _rate(rows: Sequence[Mapping[str, Any]], *keys: str) -> float:
    """Fraction of rows where every indicator column of ``keys`` is 1."""
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


def cmd_robustness(args: argparse.Namespace) -> None:
    device = runtime(args)
    splits = data_mod.load(args.data)
    threat = threat_from(args.threat, splits.bounds)
    attack = RobustnessAttack.from_mapping(args.params)
    model = load_classifier(args.classifier, device)
    x, y = splits.x("test"), splits.y("test")
    columns = ROBUSTNESS_COLUMNS + (["x0", "x1"] if args.coordinates else [])
    combine = [_label_attack_flips(path, threat, len(y)) for path in args.combine]
    records = ResumableCSV(args.out, columns)
    if records.rows:
        log.info("resuming: %d of %d points already done", len(records.rows), len(y))
    for idx in _todo_chunks(records.done_keys("index"), len(y), args.batch_size):
        start = int(idx[0])
        res = robustness_test(model, x[idx], threat, attack, generator=_chunk_generator(args.seed, start),
                              seed=args.seed + start, device=device)
        size = perturbation_size(x[idx], res.x_adv, threat.norm)
        for j, i in enumerate(idx.tolist()):
            correct = bool(res.clean_prediction[j] == y[i])
            robust, adv, by, pert = bool(res.robust[j]), int(res.adv_prediction[j]), res.flipped_by[j], float(size[j])
            for name, clean, flipped, pred, dist in combine:
                if clean[i] != int(res.clean_prediction[j]):
                    raise SystemExit(f"--combine {name}: clean prediction of point {i} differs (another model?)")
                if robust and flipped[i]:
                    robust, adv, by, pert = False, int(pred[i]), name, float(dist[i])
            row = {"index": i, "label": int(y[i]), "clean_prediction": int(res.clean_prediction[j]),
                   "adv_prediction": adv, "correct": int(correct), "robust": int(robust),
                   "robust_accurate": int(correct and robust), "robust_inaccurate": int(robust and not correct),
                   "flipped_by": by, "perturbation": pert}
            if args.coordinates:
                row.update(x0=float(x[i].flatten()[0]), x1=float(x[i].flatten()[1]))
            records.append(row)
    summary = robustness_summary(splits.name, args.name, threat, records.rows, args.clean_row)
    spec = load_spec(args.classifier)
    records.finalize({
        "attack": "robustness", "norm": threat.norm, "eps": threat.eps, "params": dict(args.params),
        "combined_with": list(args.combine),
        "dataset": splits.name, "classifier": args.name, "summary_rows": summary,
        "classifier_sha256": spec.get("sha256"),
        **provenance({"attack": "robustness", "threat": args.threat, "params": args.params}, args.seed),
    }, sort_key="index")
    _log_rows(summary)
    if args.grid_out:
        write_grid(model, x, args.grid_size, args.grid_out, device, {"classifier": args.name,
                                                                     "dataset": splits.name})


def _label_attack_flips(path: str, threat: Threat, n: int
                        ) -> tuple[str, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(attack name, clean predictions, flipped, attacked predictions, perturbation sizes) of a label-attack
    evaluation. On a correctly classified point a label flip is a change of the model's own prediction,
    hence a proof of non-robustness; on a wrong point such records say nothing (the attack is not run)."""
    frame, meta = read_records(path)
    if meta.get("norm") != threat.norm or not math.isclose(float(meta.get("eps", -1)), threat.eps):
        raise SystemExit(f"{path}: threat {meta.get('norm')} ε={meta.get('eps')} differs from {threat}")
    frame = frame.set_index("index").sort_index()
    if list(frame.index) != list(range(n)):
        raise SystemExit(f"{path}: expected one record per test point 0..{n - 1}")
    clean, label, pred = (frame[k].to_numpy() for k in ("clean_prediction", "label", "prediction"))
    flipped = (clean == label) & (pred != label)
    return str(meta.get("attack", path)), clean, flipped, pred, frame["perturbation"].to_numpy()


def write_grid(model: torch.nn.Module, x: torch.Tensor, size: int, out: str, device: torch.device,
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


def cmd_composite_spec(args: argparse.Namespace) -> None:
    splits_meta = read_json(sidecar(args.data))
    robust, standard = load_spec(args.robust), load_spec(args.standard)
    if robust["num_classes"] != standard["num_classes"]:
        raise SystemExit("the robust and the standard model predict different numbers of classes")
    write_json(args.out, {
        "kind": "era-composite", "name": args.name, "dataset": splits_meta["dataset"],
        "robust": args.robust, "standard": args.standard, "selector": args.selector, "threat": args.threat,
        "bounds": splits_meta["bounds"], "num_classes": robust["num_classes"],
        "sha256": {"robust": robust.get("sha256"), "standard": standard.get("sha256")},
        **provenance({"selector": args.selector, "threat": args.threat}, None),
    })


def _records_by_index(path: str, n: int) -> dict[str, np.ndarray]:
    frame, _ = read_records(path)
    frame = frame.set_index("index").sort_index()
    if len(frame) != n or list(frame.index) != list(range(n)):
        raise SystemExit(f"{path}: expected one record per test point 0..{n - 1}")
    return {k: frame[k].to_numpy() for k in ("clean_prediction", "correct", "robust")}


def _check_predictions(pred: torch.Tensor, recorded: np.ndarray, path: str) -> None:
    if not np.array_equal(pred.cpu().numpy(), recorded):
        raise SystemExit(f"{path}: its clean predictions differ from the model's (records of another model?)")


def cmd_composite(args: argparse.Namespace) -> None:
    """Per test point: F's clean prediction (runtime selector), the reference code's joined-records
    robustness (selector at 2ε, parts' robustness records at ε) and the end-to-end adaptive attack.

    A point counts as robust only if both evaluations say so; robust accuracy additionally needs the
    formula's correctness (so it is at most both the formula's and the attack's robust accuracy)."""
    device = runtime(args)
    splits = data_mod.load(args.data)
    spec = load_spec(args.classifier)
    threat = threat_from(spec["threat"], splits.bounds)
    composite = load_classifier(args.classifier, device)
    attack = AdaptiveAttack.from_mapping({**args.params, **args.suite})
    strong = None if args.strong is None else RobustnessAttack.from_mapping(args.strong)
    x, y = splits.x("test"), splits.y("test")
    rob = _records_by_index(args.robust_records, len(y))
    std = _records_by_index(args.standard_records, len(y))
    records = ResumableCSV(args.out, COMPOSITE_COLUMNS)
    for idx in _todo_chunks(records.done_keys("index"), len(y), args.batch_size):
        xb, yb = x[idx].to(device), y[idx].to(device)
        i_np = idx.numpy()
        dec = clean_decision(composite, xb, strong, generator=_chunk_generator(args.seed + 1, int(idx[0])),
                             seed=args.seed + int(idx[0]))
        _check_predictions(dec.standard_prediction, std["clean_prediction"][i_np], args.standard_records)
        if dec.branch_certified is None:
            _check_predictions(dec.branch_prediction, rob["clean_prediction"][i_np], args.robust_records)
            rob_branch = rob["robust"][i_np].astype(bool)
        else:  # the smoothed branch model is robust at ε where its certificate covers the ε-ball
            rob_branch = dec.branch_certified.cpu().numpy()
        acc_branch = (dec.branch_prediction == yb).cpu().numpy()
        formula_correct, formula_robust = compositional_indicators(
            dec.sound.cpu().numpy(), acc_branch, rob_branch, std["correct"][i_np].astype(bool),
            std["robust"][i_np].astype(bool))
        pred = dec.prediction
        res = era_adaptive_attack(composite, xb, pred, threat, attack,
                              generator=_chunk_generator(args.seed, int(idx[0])))
        size = perturbation_size(xb.cpu(), res.x_adv, threat.norm)
        for j, i in enumerate(idx.tolist()):
            correct, attack_robust = bool(pred[j] == yb[j]), not bool(res.fooled[j])
            robust = bool(formula_robust[j]) and attack_robust
            records.append({
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
    rows = records.rows
    n = len(rows)
    ds, name = splits.name, args.name
    summary = [
        summary_row(ds, name, "clean", threat, "accuracy", _rate(rows, "correct"), n),
        summary_row(ds, name, "clean", threat, "selection_rate", _rate(rows, "selected"), n),
        summary_row(ds, name, "clean", threat, "sound_selection_rate", _rate(rows, "sound"), n),
        summary_row(ds, name, "adaptive", threat, "accuracy", _rate(rows, "robust_accurate"), n),
        summary_row(ds, name, "adaptive", threat, "robust_inaccuracy", _rate(rows, "robust_inaccurate"), n),
        summary_row(ds, name, "adaptive", threat, "formula_accuracy", _rate(rows, "formula_correct", "formula_robust"),
                    n),
        summary_row(ds, name, "adaptive", threat, "attack_accuracy", _rate(rows, "correct", "attack_robust"), n),
        summary_row(ds, name, "adaptive", threat, "accuracy_before_transfer",
                    float(np.mean([int(float(r["correct"])) and (int(float(r["attack_robust"]))
                                                                 or str(r["fooled_by"]).startswith("transfer"))
                                   for r in rows])) if n else float("nan"), n),
    ]
    if strong is not None:
        accepted = [r for r in rows if int(float(r["selected"]))]
        summary.append(summary_row(ds, name, "clean", threat, "selector_false_accept_rate",
                                   _rate(accepted, "selector_false_accept"), len(accepted)))
    records.finalize({
        "attack": "adaptive", "norm": threat.norm, "eps": threat.eps, "params": dict(args.params),
        "suite": dict(args.suite), "strong": args.strong, "selector": spec["selector"], "dataset": ds,
        "classifier": name, "summary_rows": summary,
        "classifier_sha256": spec.get("sha256"),
        **provenance({"attack": "adaptive", "params": args.params, "selector": spec["selector"],
                      "threat": spec["threat"]}, args.seed),
    }, sort_key="index")
    _log_rows(summary)


def _log_rows(rows: Sequence[Mapping[str, Any]]) -> None:
    for r in rows:
        log.info("%s / %s %s: %.4f on %d points", r["classifier"], r["evaluation"], r["metric"], r["value"],
                 r["n"])
