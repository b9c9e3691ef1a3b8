"""Faults a user meets with the files of a run, each injected and each ending in a one-line error naming the
file (and line) with nothing lost: a classifier with non-finite weights or outputs, a garbled row in a
records file, a garbled row in a resumable job's progress file. The fault table in docs/faults.md lists
these tests."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import torch

from tradeoff.attacks.evaluate import PROGRESS_COLUMNS
from tradeoff.cli import main
from tradeoff.errors import EXIT_USER_ERROR
from tradeoff.io import ArtifactError, ResumableCSV, malformed_line, read_records, sha256_file

THREAT = json.dumps({"norm": "Linf", "eps": 0.1})
RT = ["--threads", "1", "--device", "cpu", "--no-progress", "--seed", "0"]
ATTACKS = ["clean", "pgd"]
PARAMS = json.dumps({"clean": {}, "pgd": {"steps": 3, "step_rel": 0.5, "restarts": 1, "loss": "ce"}})


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("faults")
    assert main(["data", "--dataset", "digits", "--params", json.dumps({"n_calib": 30, "n_test": 120}),
                 "--seed", "0", "--out", str(d / "data.pt")]) == 0
    assert main(["train", *RT, "--data", str(d / "data.pt"), "--name", "standard", "--arch", "small_cnn",
                 "--arch-options", json.dumps({"width": 8}), "--objective", "standard", "--objective-params", "{}",
                 "--threat", json.dumps({"norm": "Linf", "eps": 0.0}),
                 "--train-params", json.dumps({"epochs": 1, "batch_size": 128}),
                 "--checkpoint", str(d / "ck.pt"), "--out", str(d / "standard.json")]) == 0
    return d


def _evaluate(d: Path, spec: Path, out: Path, *extra: str) -> int:
    return main(["attacks", *RT, "--data", str(d / "data.pt"), "--classifier", str(spec), "--name", spec.stem,
                 "--out-dir", str(out), "--attacks", *ATTACKS, "--threat", THREAT, "--params", PARAMS,
                 "--batch-size", "10", *extra])


def _error(capsys) -> str:
    """The one error line the command printed (log lines aside)."""
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("tradeoff: error:")]
    assert len(errors) == 1, errors
    return errors[0]


def _tampered(d: Path, name: str, change) -> Path:
    """A copy of the trained classifier whose weights ``change`` edits, with a matching checksum in its
    description (a model from elsewhere, consistent with its own metadata)."""
    state = torch.load(d / "standard.pt", weights_only=True)
    change(state)
    torch.save(state, d / f"{name}.pt")
    spec = json.loads((d / "standard.json").read_text())
    spec["sha256"] = sha256_file(d / f"{name}.pt")
    (d / f"{name}.json").write_text(json.dumps(spec))
    return d / f"{name}.json"


def _last_float_weight(state: dict[str, torch.Tensor]) -> str:
    return [k for k, v in state.items() if v.is_floating_point() and k.endswith("weight")][-1]


def test_a_classifier_with_a_nan_weight_is_refused_before_any_evaluation(trained, tmp_path, capsys):
    def poison(state):
        state[_last_float_weight(state)].view(-1)[3] = float("nan")

    spec = _tampered(trained, "nan_weights", poison)
    assert _evaluate(trained, spec, tmp_path / "eval") == EXIT_USER_ERROR
    err = _error(capsys)
    assert "nan_weights.pt: non-finite weights (1 of" in err, err  # the one poisoned entry is counted
    assert not (tmp_path / "eval").exists() or not any((tmp_path / "eval").rglob("*.csv*"))  # nothing evaluated


def test_a_classifier_with_non_finite_outputs_on_the_first_batch_is_refused(trained, tmp_path, capsys):
    def overflow(state):  # finite weights whose logits overflow float32 to ±inf (and inf − inf = NaN)
        key = _last_float_weight(state)
        state[key].fill_(3e38)

    spec = _tampered(trained, "overflow", overflow)
    weights = torch.load(trained / "overflow.pt", weights_only=True)
    assert all(bool(torch.isfinite(v).all()) for v in weights.values() if v.is_floating_point())
    assert _evaluate(trained, spec, tmp_path / "eval") == EXIT_USER_ERROR
    err = _error(capsys)
    assert "overflow.json: non-finite outputs" in err, err
    assert not (tmp_path / "eval").exists() or not any((tmp_path / "eval").rglob("*.csv*"))


def _garble(path: Path, line: int, replace) -> None:
    """Replace line ``line`` (1-based, header = 1) of ``path`` with ``replace(old line)``."""
    lines = path.read_bytes().split(b"\n")
    lines[line - 1] = replace(lines[line - 1])
    path.write_bytes(b"\n".join(lines))


@pytest.mark.parametrize("garble, reason", [
    (lambda line: line[:5], "fields, the header has"),                      # a row cut short
    (lambda line: line.replace(b",", b",\xff", 1), "not UTF-8"),           # a flipped byte
    (lambda line: b"\x00" * len(line), "NUL byte"),                        # a zeroed block
    (lambda line: line.replace(b",", b",x", 1), "holds numbers on every other line"),  # a changed value
])
def test_a_garbled_row_of_a_records_file_is_named_by_file_and_line(trained, tmp_path, capsys, garble, reason):
    out = tmp_path / "eval"
    assert _evaluate(trained, trained / "standard.json", out) == 0
    records = out / "pgd.csv"
    good, _ = read_records(records)
    _garble(records, 17, garble)
    with pytest.raises(ArtifactError, match=rf"pgd\.csv, line 17: malformed row \(.*{reason}"):
        read_records(records)
    # the same one line from the command that reads the records (the per-point worst case)
    assert main(["attacks-worst", "--name", "standard", "--threat", THREAT, "--out", str(tmp_path / "worst.csv"),
                 str(out / "clean.csv"), str(records)]) == EXIT_USER_ERROR
    err = _error(capsys)
    assert "pgd.csv, line 17: malformed row" in err, err
    assert not (tmp_path / "worst.csv").exists()
    assert len(good) == 120


def test_malformed_line_finds_nothing_in_a_good_file(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("index,attack,correct\n0,pgd,1\n1,,0\n2,margin,1\n")
    assert malformed_line(path) is None


def _progress(tmp_path: Path, trained: Path) -> Path:
    """A stopped evaluation job's progress file: 2 finished batches of 10 points (rows of clean and pgd, then
    the batch's closing row)."""
    out = tmp_path / "eval"
    assert _evaluate(trained, trained / "standard.json", out, "--stop-after", "2") == 0
    partial = next(out.glob("progress-*.csv.partial"))
    assert partial.read_text().count("\n") == 1 + 2 * (2 * 10 + 1)
    return partial


def test_a_resumed_job_drops_an_incomplete_batch_and_ends_with_the_records_of_an_uninterrupted_one(
        trained, tmp_path):
    partial = _progress(tmp_path, trained)
    with open(partial, "ab") as fh:  # a third batch cut off by a kill: 5 whole rows, one garbled, one cut
        fh.write(b"20,clean,0.1,20,3,3,3,1,0.0,\n" * 5 + b"20,clean,\xff\xfe\n" + b"20,pg")
    assert _evaluate(trained, trained / "standard.json", tmp_path / "eval") == 0
    assert _evaluate(trained, trained / "standard.json", tmp_path / "whole") == 0
    for attack in ATTACKS:
        assert (tmp_path / "eval" / f"{attack}.csv").read_bytes() == (tmp_path / "whole" / f"{attack}.csv").read_bytes()


def test_a_malformed_row_inside_a_finished_batch_of_a_progress_file_is_refused(trained, tmp_path, capsys):
    partial = _progress(tmp_path, trained)
    _garble(partial, 5, lambda line: line[:7])  # inside the first batch, which has its closing row
    before = partial.read_bytes()
    assert _evaluate(trained, trained / "standard.json", tmp_path / "eval") == EXIT_USER_ERROR
    err = _error(capsys)
    assert f"{partial.name}, line 5: malformed row" in err, err
    assert partial.read_bytes() == before  # the progress file is left as it was, for the user to look at
    with pytest.raises(ArtifactError, match="line 5"):
        ResumableCSV(partial.with_name(partial.name.removesuffix(".partial")), PROGRESS_COLUMNS,
                     closes=lambda row: row["attack"] == "")


def test_a_per_point_progress_file_refuses_a_garbled_row_before_good_ones_and_drops_a_trailing_one(tmp_path):
    path = tmp_path / "points.csv"
    log = ResumableCSV(path, ["index", "radius"])
    for i in range(4):
        log.append({"index": i, "radius": i * 0.5})
    log.close()
    data = log.partial.read_bytes()
    log.partial.write_bytes(data + b"4,\xff\n")  # a garbled last row: the point is redone
    again = ResumableCSV(path, ["index", "radius"])
    assert again.done_keys("index") == {"0", "1", "2", "3"} and again.dropped_partial_line
    again.close()
    lines = data.split(b"\n")
    lines[2] = b"1;0.5"  # a garbled row followed by good ones: finished work is damaged
    log.partial.write_bytes(b"\n".join(lines))
    with pytest.raises(ArtifactError, match=r"points\.csv\.partial, line 3: malformed row \(1 fields"):
        ResumableCSV(path, ["index", "radius"])


@pytest.fixture
def small_disk(tmp_path):
    """A 12 KiB tmpfs mounted (as root) for the test, and a function that grows it (frees space)."""
    mount = tmp_path / "small"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small file system needs root")
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=12k", "tmpfs", str(mount)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")

    def grow() -> None:
        subprocess.run(["mount", "-o", "remount,size=1m", str(mount)], check=True)

    try:
        yield mount, grow
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_fails_in_one_line_leaves_nothing_complete_and_the_rerun_resumes(trained, tmp_path, capsys,
                                                                                     small_disk):
    mount, grow = small_disk
    out = mount / "eval"
    assert _evaluate(trained, trained / "standard.json", out, "--batch-size", "2") == EXIT_USER_ERROR
    err = _error(capsys)
    assert f"{out}/progress-clean+pgd.csv.partial: no space left on device" in err, err
    # nothing that looks complete: no records, no sidecar; the progress file holds whole batches only
    assert not list(out.glob("*.json")) and not (out / "pgd.csv").exists()
    partial = out / "progress-clean+pgd.csv.partial"
    kept = partial.read_bytes()
    assert 0 < kept.count(b"\n") < 1 + 60 * 5  # part of the 60 batches of 2 points (4 rows + a closing row)
    grow()  # space is freed
    assert _evaluate(trained, trained / "standard.json", out, "--batch-size", "2") == 0
    log = capsys.readouterr().err
    done = int(log.split("resuming after ")[1].split()[0])
    assert 0 < done < 60, log
    assert _evaluate(trained, trained / "standard.json", tmp_path / "whole", "--batch-size", "2") == 0
    for attack in ATTACKS:
        assert (out / f"{attack}.csv").read_bytes() == (tmp_path / "whole" / f"{attack}.csv").read_bytes()
    assert not partial.exists()


def test_the_workflow_profile_overrides_no_key_of_the_slurm_profile():
    # Snakemake reads profiles/default as the workflow profile under `--profile profiles/slurm` too, and its
    # keys win key by key: a retry count or latency wait set there would silently replace the cluster's.
    import yaml

    root = Path(__file__).resolve().parents[1] / "profiles"
    local = yaml.safe_load((root / "default" / "config.yaml").read_text())
    cluster = yaml.safe_load((root / "slurm" / "config.yaml").read_text())
    assert cluster["restart-times"] >= 1  # a job killed at its time limit is retried with more time
    clashes = {k: (local[k], cluster[k]) for k in local.keys() & cluster.keys() if local[k] != cluster[k]}
    assert not clashes, clashes
