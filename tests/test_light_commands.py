"""The commands that only read and write records or JSON start without importing torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tradeoff.io import read_records, write_json, write_records
from tradeoff.probabilistic.settings import ProbSettings
from tradeoff.records import PROGRESS_COLUMNS, RECORD_COLUMNS, SUMMARY_COLUMNS

ROOT = Path(__file__).resolve().parents[1]
THREAT = {"norm": "Linf", "eps": 0.1}
PROBE = """
import json, sys
from tradeoff.cli import main
for argv in json.loads(sys.argv[1]):
    assert main(argv) == 0, argv
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] == "torch")))
"""
FIGURE_PROBE = """
import json, sys
import tradeoff.claims, tradeoff.commands.claims, tradeoff.commands.readme, tradeoff.readme
from tradeoff.cli import main
from tradeoff.figures import load_all
load_all()
for argv in json.loads(sys.argv[1]):
    assert main(argv) == 0, argv
print(json.dumps({"torch": sorted(m for m in sys.modules if m.split(".")[0] == "torch"),
                  "scipy.stats": "scipy.stats" in sys.modules}))
"""


def _attack_record(path: Path, attack: str, correct: list[int]) -> None:
    rows = [{"index": i, "label": 1, "clean_prediction": 1, "prediction": 1 if c else 0, "correct": c,
             "perturbation": 0.0 if c else 0.05} for i, c in enumerate(correct)]
    write_records(path, rows, {"attack": attack, **THREAT, "dataset": "digits", "classifier_sha256": "abc",
                               "summary_rows": []}, columns=RECORD_COLUMNS)


def _shard(path: Path, shard: int, labels: list[int], predictions: list[int]) -> None:
    rows = [{"batch": shard * 10, "attack": "clean", "eps": 0.1, "index": shard * 10 + i, "label": y,
             "clean_prediction": p, "prediction": p, "correct": int(p == y), "perturbation": 0.0, "meta": ""}
            for i, (y, p) in enumerate(zip(labels, predictions, strict=True))]
    rows.append({"batch": shard * 10, "attack": "", "eps": 0.1, "index": shard * 10, "label": -1,
                 "clean_prediction": -1, "prediction": -1, "correct": 0, "perturbation": 0.0, "meta": "{}"})
    write_records(path, rows, {"dataset": "digits", "classifier_sha256": "abc", "data_sha256": "d", "attacks":
                               ["clean"], "threat": THREAT, "params": {}, "seed": 0, "batch_size": 10,
                               "shard": shard, "shards": 2}, columns=PROGRESS_COLUMNS)


def test_record_and_spec_commands_run_without_torch(tmp_path):
    d = tmp_path
    _attack_record(d / "pgd.csv", "pgd", [1, 1, 0, 1])
    _attack_record(d / "margin.csv", "margin", [1, 0, 1, 1])
    _shard(d / "s0.csv", 0, [1, 2, 3], [1, 2, 0])
    _shard(d / "s1.csv", 1, [4, 5], [4, 0])
    for name in ("g", "h"):
        write_json(d / f"{name}.json", {"kind": "base", "dataset": "digits", "num_classes": 10, "sha256": name * 8})
    threat = json.dumps(THREAT)
    commands = [
        ["attacks-worst", "--name", "m", "--threat", threat, "--out", str(d / "worst.csv"), str(d / "pgd.csv"),
         str(d / "margin.csv")],
        ["merge", "attacks", "--name", "m", "--attacks", "clean", "--threat", threat, "--out-dir", str(d / "ev"),
         str(d / "s1.csv"), str(d / "s0.csv")],
        ["summary", "--out", str(d / "summary.csv"), str(d / "worst.csv"), str(d / "ev" / "clean.csv")],
        ["attacks-sanity", "--summary", str(d / "summary.csv"), "--out", str(d / "sanity.csv")],
        ["mixing-spec", "--accurate", str(d / "g.json"), "--robust", str(d / "h.json"), "--alpha", "0.5", "--mode",
         "prob", "--name", "mix", "--out", str(d / "mix.json")],
    ]
    proc = subprocess.run([sys.executable, "-c", PROBE, json.dumps(commands)], capture_output=True, text=True,
                          timeout=300, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []
    # and they did their work: the worst case breaks points 1 and 2, the merged shards hold all five points
    worst, _ = read_records(d / "worst.csv")
    assert worst["correct"].tolist() == [1, 0, 0, 1] and worst["broken_by"].tolist()[1:3] == ["margin", "pgd"]
    clean, meta = read_records(d / "ev" / "clean.csv")
    assert clean["index"].tolist() == [0, 1, 2, 10, 11] and meta["summary_rows"][0]["value"] == 3 / 5
    summary = pd.read_csv(d / "summary.csv")
    assert sorted(summary["evaluation"]) == ["clean", "worst"]
    assert json.loads((d / "mix.json").read_text())["accurate"] == "g.json"


# ------------------------------------------------------------------------------------------------------ figures
PROB = {"eps": 0.3, "norm": "Linf", "kappa": 0.05, "kappa_sweep": [0.05, 0.1], "alpha": 0.01, "n_max": 400}


def _certify_records(d: Path) -> dict[str, list[str]]:
    """Per-sample randomized-smoothing records (two σ) and mixed-classifier records (two α per point)."""
    rng = np.random.default_rng(0)
    rs, mixed = [], []
    for sigma in (0.25, 0.5):
        label = rng.integers(0, 10, 40)
        prediction = np.where(rng.random(40) < 0.8, label, -1)
        radius = np.where(prediction >= 0, rng.uniform(0.0, 2 * sigma, 40), 0.0)
        rows = [{"index": i, "label": int(y), "prediction": int(p), "correct": int(p == y), "radius": float(r)}
                for i, (y, p, r) in enumerate(zip(label, prediction, radius, strict=True))]
        write_records(d / f"rs-{sigma}.csv", rows, {"alpha": 0.001, "config": {"n": 1000}})
        rows = [{"index": i, "label": int(y), "alpha": a, "prediction": int(p), "radius_rs": float(r) * a,
                 "radius_lipschitz": float(r) * a / 2, "mixed_clean_prediction": int(y) if a < 0.9 else int(p),
                 "standard_prediction": int(y)}
                for a in (0.5, 0.9) for i, (y, p, r) in enumerate(zip(label, prediction, radius, strict=True))]
        write_records(d / f"mixed-{sigma}.csv", rows, {})
        rs.append(str(d / f"rs-{sigma}.csv"))
        mixed.append(str(d / f"mixed-{sigma}.csv"))
    return {"rs": rs, "mixed": mixed}


def _prob_record(path: Path, failure_rates: list[float], test: str) -> None:
    """Merged probabilistic-certification records whose cumulative success counts, at every look of every κ's
    design and at n_max, fail at the given rate per point."""
    settings = ProbSettings.from_mapping(PROB)
    looks = sorted({settings.n_max, *(n for k in settings.kappas for n in settings.design(k).looks)})
    rows = [{"index": i, "label": i % 3, "reference": i % 3 if i % 4 else (i + 1) % 3,
             "counts": ";".join(f"{n}:{n - int(rate * n)}" for n in looks)} for i, rate in enumerate(failure_rates)]
    write_records(path, rows, {"settings": PROB, "test": test})


def _tsipras_records(d: Path) -> dict:
    """Closed forms, weights and per-sample exact / PGD records of Tsipras et al.'s linear classifiers."""
    rng = np.random.default_rng(1)
    names, eps = ["standard", "adversarial", "bayes"], np.linspace(0.0, 1.2, 7)
    rows = [{"classifier": n, "eps": float(e), "accuracy": max(0.0, 0.95 - j * float(e) / 2),
             "bound": 0.3 if e >= 0.6 else "nan"} for j, n in enumerate(names) for e in eps]
    write_records(d / "closed_forms.csv", rows, {"p": 0.95, "eta": 0.3, "d": 20, "eps": 0.6})
    rows = [{"classifier": n, "coordinate": c, "weight": float(w)}
            for n in names for c, w in enumerate(rng.normal(size=21))]
    write_records(d / "weights.csv", rows, {"p": 0.95, "eta": 0.3, "d": 20})
    records = {}
    for n in names:
        write_records(d / f"{n}-exact.csv", [{"margin": float(m)} for m in rng.normal(1.0, 1.0, 50)],
                      {"weight_l1": 2.0})
        write_records(d / f"{n}-pgd.csv", [{"correct": int(c)} for c in rng.random(50) < 0.6], {})
        records[n] = {"exact": str(d / f"{n}-exact.csv"), "pgd": str(d / f"{n}-pgd.csv")}
    return {"closed_forms": str(d / "closed_forms.csv"), "weights": str(d / "weights.csv"), "records": records,
            "trained": ["standard", "adversarial"], "references": ["bayes"]}


def _run_probe(commands: list[list[str]]) -> dict:
    proc = subprocess.run([sys.executable, "-c", FIGURE_PROBE, json.dumps(commands)], capture_output=True,
                          text=True, timeout=300, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _figure(name: str, out: Path, **kwargs) -> list[str]:
    return ["figures", name, "--out", str(out), "--args", json.dumps(kwargs)]


def _drawn(png: Path) -> bool:
    return png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.with_suffix(".pdf").read_bytes()[:5] == b"%PDF-"


@pytest.mark.slow
def test_figure_claims_and_readme_modules_import_neither_torch_nor_scipy_stats(tmp_path):
    """Every figure module, the claims and readme modules, and the certificate and Tsipras figures drawn from
    records: no torch, and no scipy.stats either (its import costs about as much as drawing a figure)."""
    d = tmp_path
    cert, tsipras = _certify_records(d), _tsipras_records(d)
    commands = [
        _figure("certify-rs", d / "rs.png", records=cert["rs"], sigmas=[0.25, 0.5], dataset="digits"),
        _figure("certify-mixed", d / "mixed.png", rs_records=cert["rs"], mixed_records=cert["mixed"],
                sigmas=[0.25, 0.5], dataset="digits"),
        _figure("tsipras", d / "tsipras.png", weights_out=str(d / "weights.png"), **tsipras),
    ]
    assert _run_probe(commands) == {"torch": [], "scipy.stats": False}
    assert all(_drawn(d / f"{name}.png") for name in ("rs", "mixed", "tsipras", "weights"))


@pytest.mark.slow
def test_probabilistic_figures_claims_and_readme_run_without_torch(tmp_path):
    """The κ sweep and the samples histogram replay every decision from the records' counts without torch;
    the claims (here every one without its records) and the README's results section need none either."""
    d = tmp_path
    pd.DataFrame(columns=SUMMARY_COLUMNS).to_csv(d / "summary.csv", index=False)
    (d / "results").mkdir()
    (d / "README.md").write_text("# title\n")
    for name, rates in (("standard", [0.0, 0.0, 0.02, 0.5, 0.0, 0.2]), ("pgd_at", [0.0] * 6)):
        for test in ("fixed", "sequential"):
            _prob_record(d / f"{name}-{test}.csv", rates, test)
    records = {name: {test: str(d / f"{name}-{test}.csv") for test in ("fixed", "sequential")}
               for name in ("standard", "pgd_at")}
    commands = [
        _figure("prob-kappa", d / "kappa.png", records=records, dataset="digits"),
        _figure("prob-samples", d / "samples.png", records={n: r["sequential"] for n, r in records.items()},
                dataset="digits"),
        ["claims", "--records", "{}", "--summary", str(d / "summary.csv"), "--out", str(d / "claims.csv")],
        ["readme", "--results", str(d / "results"), "--readme", str(d / "README.md")],
    ]
    assert _run_probe(commands)["torch"] == []
    assert _drawn(d / "kappa.png") and _drawn(d / "samples.png")
    claims = pd.read_csv(d / "claims.csv")
    assert len(claims) > 0 and (claims["verdict"] == "not testable").any()
    assert (d / "claims.md").read_text().startswith("#") and (d / "README.md").read_text() != "# title\n"
