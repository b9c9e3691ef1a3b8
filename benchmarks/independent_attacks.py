"""An outside evaluator's check of a finished run: a stronger, independent suite on the points the run calls robust.

    python benchmarks/independent_attacks.py --results results/digits linf-0.3:pgd_at linf-0.1:era ...

For each ``<threat>:<classifier>`` the points whose per-point worst case (``eval/<classifier>/worst.csv``) is
still correct are attacked again with

* standard AutoAttack (Croce & Hein 2020: APGD-CE, APGD-T with 9 targets, FAB-T with 9 targets, Square with
  5000 queries), through pyautoattack, and
* margin-loss PGD (Carlini & Wagner 2017's loss) with 50 steps, 10 random restarts and targeted runs towards
  all 9 other classes, 2 restarts each,

with seeds other than the run's. A point either breaks is one the run overstated. Prints one Markdown row per
classifier (robust points, broken by each suite, overstated points and their share of the test set) and, with
``--out``, writes them as JSON. The run is judged, not tuned: nothing here feeds back into the pipeline.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd
import torch

from tradeoff import data as data_mod
from tradeoff.attacks.evaluate import run_attack
from tradeoff.classifiers import load_classifier
from tradeoff.io import read_records
from tradeoff.threat import Threat

SUITES = {
    "margin-10x9": ("margin", {"steps": 50, "step_rel": 0.1, "restarts": 10, "loss": "margin", "targets": 9,
                               "target_restarts": 2}),
    "standard-aa": ("autoattack", {"version": "standard"}),
}
SHARED = ("standard",)
"""Models trained once for every threat: their specs sit in ``models/`` rather than ``<threat>/models/``."""


def check(results: Path, spec: str, seed: int, device: torch.device) -> dict[str, object]:
    """Attack the points ``spec``'s worst case calls robust with every suite of :data:`SUITES`."""
    threat_dir, name = spec.split(":")
    norm, eps = threat_dir.split("-", 1)
    splits = data_mod.load(results / "data.pt")
    x, y = splits.x("test"), splits.y("test")
    threat = Threat({"linf": "Linf", "l2": "L2"}[norm], float(eps), splits.bounds)
    shared = name in SHARED or name.startswith("gauss_aug")
    model = load_classifier(results / ("models" if shared else f"{threat_dir}/models") / f"{name}.json", device)
    worst, _ = read_records(results / threat_dir / "eval" / name / "worst.csv")
    robust = worst["correct"].to_numpy().astype(bool)
    idx = torch.tensor(robust.nonzero()[0])
    broken = torch.zeros(len(idx), dtype=torch.bool)
    row: dict[str, object] = {"classifier": spec, "test_points": len(robust), "robust_points": int(robust.sum())}
    for label, (attack, params) in SUITES.items():
        records, _ = run_attack(model, x[idx], y[idx], attack, threat, params, seed, device)
        ok = torch.tensor(pd.DataFrame(records)["correct"].to_numpy().astype(bool))
        row[label] = int((~ok).sum())
        broken |= ~ok
    row["overstated"] = int(broken.sum())
    row["overstated_share"] = row["overstated"] / len(robust)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("classifiers", nargs="+", help="<threat>:<classifier>, e.g. linf-0.3:pgd_at")
    parser.add_argument("--results", default="results/digits", help="the dataset's results folder of a finished run")
    parser.add_argument("--seed", type=int, default=12345, help="attack seed (differs from the run's on purpose)")
    parser.add_argument("--out", help="JSON file for the rows")
    args = parser.parse_args()
    torch.set_num_threads(1)
    device = torch.device("cpu")
    rows = []
    print("| classifier | robust points (run) | broken: margin PGD 10×9 | broken: standard AutoAttack | overstated |")
    print("|---|---:|---:|---:|---:|")
    for spec in args.classifiers:
        row = check(Path(args.results), spec, args.seed, device)
        rows.append(row)
        print(f"| {spec} | {row['robust_points']} / {row['test_points']} | {row['margin-10x9']} | "
              f"{row['standard-aa']} | {row['overstated']} ({100 * row['overstated_share']:.1f}%) |", flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
