"""``tradeoff theory-evaluate``: Tsipras et al.'s linear classifiers, closed forms next to experiments.

One call evaluates the paper's reference classifiers (averaging, Bayes, ``sign(x_1)``) and the trained
linear models on the ``tsipras`` test split: clean and exact worst case (closed form per sample; one
record ``exact.csv`` carries both) and PGD (the one PGD core, as a check that it reaches the exact worst
case; ``pgd.csv``), and tabulates the closed-form (population) accuracies on a grid of budgets.
Everything is cheap (linear models), so one process does it all: starting a Python process with torch
costs more than the work itself.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import numpy as np

from .. import data as data_mod
from ..classifiers import load_classifier, load_spec
from ..evaluate import RECORD_COLUMNS, accuracy_rows, run_attack, summary_row
from ..io import provenance, write_records
from ..theory import linear_accuracy, tradeoff_bound
from ..tsipras import (
    EXACT_COLUMNS,
    closed_form_rows,
    empirical_bound_holds,
    eps_grid,
    exact_records,
    linear_model,
    linear_params,
    reference_classifiers,
)
from .common import add_runtime_args, json_arg, runtime, threat_from

log = logging.getLogger("tradeoff")
PGD_TOLERANCE = 0.005  # the PGD core must reach the closed-form worst case within 0.5 points


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("theory-evaluate",
                       help="Tsipras et al.: closed forms vs clean / exact / PGD accuracy of linear models")
    add_runtime_args(p)
    p.add_argument("--data", required=True, help="the tsipras dataset artifact")
    p.add_argument("--model", action="append", default=[], metavar="NAME=JSON",
                   help="a trained linear classifier (repeatable), e.g. standard=<models>/standard.json")
    p.add_argument("--threat", type=json_arg, required=True, help='{"norm": "Linf", "eps": 2η}')
    p.add_argument("--pgd", type=json_arg, required=True, help="PGD parameters: steps, step_rel, restarts")
    p.add_argument("--curve", type=json_arg, required=True,
                   help="ε grid of the closed forms: {eps_max, points}")
    p.add_argument("--batch-size", type=int, default=5000)
    p.add_argument("--eval-dir", required=True, help="records go to <eval-dir>/<name>/{exact,pgd}.csv")
    p.add_argument("--theory-dir", required=True, help="closed_forms.csv and weights.csv go here")
    p.set_defaults(func=cmd_theory_evaluate)


def _parse_models(items: list[str]) -> dict[str, str]:
    models: dict[str, str] = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise SystemExit(f"--model expects NAME=JSON, got '{item}'")
        models[name] = path
    return models


def cmd_theory_evaluate(args: argparse.Namespace) -> None:
    device = runtime(args)
    splits = data_mod.load(args.data)
    if splits.name != "tsipras":
        raise SystemExit(f"theory-evaluate needs the tsipras dataset, got '{splits.name}'")
    prm = splits.meta["params"]
    p, eta, d = float(prm["p"]), float(prm["eta"]), int(prm["d"])
    threat = threat_from(args.threat, splits.bounds)
    if threat.norm != "Linf":
        raise SystemExit("the closed forms are for an l_inf adversary: use norm Linf")
    x, y = splits.x("test"), splits.y("test")
    n = int(y.shape[0])
    section = {"data": prm, "threat": args.threat, "pgd": args.pgd, "curve": args.curve}
    prov = provenance(section, args.seed)
    ds = splits.name

    classifiers: dict[str, tuple[np.ndarray, float]] = dict(reference_classifiers(p, eta, d))
    torch_models = {name: linear_model(w, b) for name, (w, b) in classifiers.items()}
    sources: dict[str, Any] = {name: "closed form" for name in classifiers}
    for name, path in _parse_models(args.model).items():
        if name in classifiers:
            raise SystemExit(f"model name '{name}' collides with a reference classifier")
        model = load_classifier(path, device)
        classifiers[name] = linear_params(model)
        torch_models[name] = model
        sources[name] = {"path": path, "sha256": load_spec(path).get("sha256")}

    table: dict[str, dict[str, float]] = {}
    eval_dir = Path(args.eval_dir)
    for name, (w, b) in classifiers.items():
        cid = f"tsipras-{name}"
        model = torch_models[name].to(device)
        common = {"dataset": ds, "classifier": cid, "source": sources[name], "p": p, "eta": eta, "d": d}
        # One per-sample record holds the clean margin y (w.x + b), hence both the clean prediction and
        # the exact worst-case one: the clean row and the exact row are both computed from it.
        exact = exact_records(w, b, x, y, threat.eps)
        clean_rows = accuracy_rows(ds, cid, "clean", None, exact, column="clean_correct")
        exact_rows = accuracy_rows(ds, cid, "exact", threat, exact)
        l1 = float(np.sum(np.abs(w)))
        write_records(eval_dir / name / "exact.csv", exact,
                      {**common, "attack": "exact", "norm": threat.norm, "eps": threat.eps, "weight_l1": l1,
                       "bias": b, "summary_rows": clean_rows + exact_rows, **prov}, columns=EXACT_COLUMNS)

        pgd, pgd_meta = run_attack(model, x, y, "pgd", threat, args.pgd, args.seed, device, args.batch_size)
        pgd_rows = accuracy_rows(ds, cid, "pgd", threat, pgd)
        gap = pgd_rows[0]["value"] - exact_rows[0]["value"]
        if abs(gap) > PGD_TOLERANCE:
            log.warning("%s: PGD accuracy %.4f is %.4f away from the exact worst case %.4f",
                        cid, pgd_rows[0]["value"], gap, exact_rows[0]["value"])
        write_records(eval_dir / name / "pgd.csv", pgd,
                      {**pgd_meta, **common, "exact_accuracy": exact_rows[0]["value"], "gap_to_exact": gap,
                       "summary_rows": pgd_rows, **prov}, columns=RECORD_COLUMNS)
        table[name] = {"clean": clean_rows[0]["value"], "exact": exact_rows[0]["value"],
                       "pgd": pgd_rows[0]["value"]}

    grid = eps_grid(float(args.curve["eps_max"]), int(args.curve["points"]), extra=[0.0, threat.eps])
    curves = closed_form_rows(classifiers, p, eta, d, grid)
    theory_rows: list[dict[str, Any]] = []
    for name, (w, b) in classifiers.items():
        cid = f"tsipras-{name}"
        std = linear_accuracy(w, b, p, eta, d, 0.0)
        rob = linear_accuracy(w, b, p, eta, d, threat.eps)
        bound = tradeoff_bound(p, std)
        # n = 0 marks a population value (closed form), not an average over test points.
        theory_rows += [summary_row(ds, cid, "theory", None, "accuracy", std, 0),
                        summary_row(ds, cid, "theory", threat, "accuracy", rob, 0),
                        summary_row(ds, cid, "theory", threat, "robust_bound", bound, 0)]
        table[name].update(theory_std=std, theory_rob=rob, bound=bound)
        emp = table[name]
        if not empirical_bound_holds(p, eta, threat.eps, emp["clean"], emp["exact"], n):
            log.warning("%s: empirical robust accuracy %.4f above the bound %.4f beyond sampling error",
                        cid, emp["exact"], tradeoff_bound(p, emp["clean"]))
    theory_dir = Path(args.theory_dir)
    write_records(theory_dir / "closed_forms.csv", curves,
                  {"dataset": ds, "p": p, "eta": eta, "d": d, "eps": threat.eps, "norm": threat.norm,
                   "summary_rows": theory_rows, **prov}, columns=["classifier", "eps", "accuracy", "bound"])
    weights = [{"classifier": name, "coordinate": i, "weight": float(v)}
               for name, (w, _) in classifiers.items() for i, v in enumerate(w)]
    write_records(theory_dir / "weights.csv", weights,
                  {"dataset": ds, "p": p, "eta": eta, "d": d, "eps": threat.eps,
                   "bias": {name: b for name, (_, b) in classifiers.items()}, **prov},
                  columns=["classifier", "coordinate", "weight"])

    log.info("tsipras p=%g eta=%g d=%d, eps=%g, %d test points", p, eta, d, threat.eps, n)
    log.info("%-12s %8s %8s | %8s %8s %8s | %8s", "classifier", "theory", "clean", "theory", "exact", "pgd",
             "bound")
    for name, r in table.items():
        log.info("%-12s %8.4f %8.4f | %8.4f %8.4f %8.4f | %8.4f", name, r["theory_std"], r["clean"],
                 r["theory_rob"], r["exact"], r["pgd"], r["bound"])
