"""The command line's error contract: a user-facing fault is one line naming the file or key and exit status 3,
``--debug`` shows its traceback, and a bug keeps its traceback (exit status 1)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tradeoff.cli import main
from tradeoff.config import ConfigError, check_config
from tradeoff.errors import EXIT_USER_ERROR, TradeoffError
from tradeoff.io import ArtifactError, write_records

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = {"eps": 0.3, "norm": "Linf", "kappa": 0.05, "kappa_sweep": [0.05], "alpha": 0.01, "n_max": 600}


def _truncated_shard(tmp_path: Path) -> Path:
    """A sampling shard whose CSV lost its last row after its sidecar was written."""
    path = tmp_path / "shard.csv"
    rows = [{"index": i, "label": 1, "reference": 1, "samples_drawn": 600, "counts": "600:600", "seconds": 0.1}
            for i in range(3)]
    write_records(path, rows, {"n_points": 3})
    path.write_text("\n".join(path.read_text().splitlines()[:-1]) + "\n")
    return path


def _merge_args(shard: Path, tmp_path: Path) -> list[str]:
    plan = [{"shards": [str(shard)], "pgd": None, "out": {"fixed": str(tmp_path / "fixed.csv")}}]
    return ["merge", "probabilistic", "--plan", json.dumps(plan)]


def _error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if "error" in line.lower()]


def test_corrupt_artifact_is_one_line_naming_the_file_and_exit_3(tmp_path, capsys):
    shard = _truncated_shard(tmp_path)
    assert main(_merge_args(shard, tmp_path)) == EXIT_USER_ERROR == 3
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert _error_lines(err) == [f"tradeoff: error: {shard}: checksum differs from shard.json (file truncated or "
                                 "modified)"]
    assert not (tmp_path / "fixed.csv").exists()


@pytest.mark.parametrize("settings, key", [({**SETTINGS, "n_max": 50}, "n_max=50"),
                                           ({k: v for k, v in SETTINGS.items() if k != "alpha"}, "'alpha'")])
def test_bad_config_value_is_one_line_naming_the_key_and_exit_3(tmp_path, capsys, settings, key):
    # the settings are checked before any input is read: the data path need not exist
    args = ["probabilistic", "--data", str(tmp_path / "none.pt"), "--classifier", str(tmp_path / "none.json"),
            "--name", "m", "--tests", "sequential", "--settings", json.dumps(settings),
            "--out", str(tmp_path / "o.csv")]
    assert main(args) == 3
    lines = _error_lines(capsys.readouterr().err)
    assert len(lines) == 1 and lines[0].startswith("tradeoff: error: --settings: ") and key in lines[0], lines


def test_debug_prints_the_traceback_instead(tmp_path, capsys):
    shard = _truncated_shard(tmp_path)
    assert main(["--debug", *_merge_args(shard, tmp_path)]) == 3
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "read_records" in err
    assert "tradeoff: error:" not in err and f"{shard}: checksum differs" in err


@pytest.mark.slow
def test_a_bug_keeps_its_traceback_and_exit_status_1(tmp_path):
    # a plan item without "shards" is a malformed call by the workflow, not a user's fault: a KeyError propagates
    proc = subprocess.run([sys.executable, "-m", "tradeoff", "merge", "probabilistic", "--plan", "[{}]"],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 1 and "Traceback" in proc.stderr and "KeyError: 'shards'" in proc.stderr
    assert "tradeoff: error:" not in proc.stderr


@pytest.mark.slow
def test_exit_status_3_from_a_real_process_and_in_the_help(tmp_path):
    shard = _truncated_shard(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "tradeoff", *_merge_args(shard, tmp_path)], capture_output=True,
                          text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 3 and proc.stderr.strip().splitlines() == [
        f"tradeoff: error: {shard}: checksum differs from shard.json (file truncated or modified)"]
    helped = subprocess.run([sys.executable, "-m", "tradeoff", "--help"], capture_output=True, text=True, timeout=300)
    assert helped.returncode == 0 and "3 a fault to fix on your side" in " ".join(helped.stdout.split())


def test_config_and_artifact_errors_are_the_one_user_facing_type(tmp_path):
    config = {"threats": [{"norm": "Linf", "eps": 0.3}]}
    schema = tmp_path / "schema.yaml"
    schema.write_text("type: object\nrequired: [threats, models]\n")
    with pytest.raises(TradeoffError, match="config error at models: missing key"):
        check_config(config, schema)
    assert ConfigError is TradeoffError and ArtifactError is TradeoffError
