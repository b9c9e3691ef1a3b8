"""The commands that only read and write records or JSON start without importing torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

from tradeoff.io import read_records, write_json, write_records
from tradeoff.records import PROGRESS_COLUMNS, RECORD_COLUMNS

ROOT = Path(__file__).resolve().parents[1]
THREAT = {"norm": "Linf", "eps": 0.1}
PROBE = """
import json, sys
from tradeoff.cli import main
for argv in json.loads(sys.argv[1]):
    assert main(argv) == 0, argv
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] == "torch")))
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
        ["worst", "--name", "m", "--threat", threat, "--out", str(d / "worst.csv"), str(d / "pgd.csv"),
         str(d / "margin.csv")],
        ["evaluate-merge", "--name", "m", "--attacks", "clean", "--threat", threat, "--out-dir", str(d / "ev"),
         str(d / "s1.csv"), str(d / "s0.csv")],
        ["summarize", "--out", str(d / "summary.csv"), str(d / "worst.csv"), str(d / "ev" / "clean.csv")],
        ["sanity", "--summary", str(d / "summary.csv"), "--out", str(d / "sanity.csv")],
        ["mix-spec", "--accurate", str(d / "g.json"), "--robust", str(d / "h.json"), "--alpha", "0.5", "--mode",
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
