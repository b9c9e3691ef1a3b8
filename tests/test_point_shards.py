"""Sharded per-point jobs (era-robustness, era-composite, mixing-adaptive): ``--shard k --shards n`` runs every
n-th chunk of the fixed grid; ``merge <stage>`` writes the records, summary rows and metadata of one unsharded
job (n = 1 included); a stopped shard resumes to the same shard records; the merge refuses a missing or
foreign shard."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_resume_guard import ROBUSTNESS, _adaptive, _composite, _robustness, gauss3, mixnet  # noqa: F401

from tradeoff.cli import main
from tradeoff.errors import EXIT_USER_ERROR
from tradeoff.io import read_json, read_records
from tradeoff.shards import shard_chunks, shard_indices, shard_path

ROOT = Path(__file__).resolve().parents[1]
SHARDS = 3
VOLATILE = {"command", "shards"}  # the merge's own command line; the number of shards it merged
STAGES = {  # stage → (fixture, command line without --out, number of points, batch size)
    "era-robustness": ("gauss3", lambda d: _robustness(d, ROBUSTNESS), 30, 7),
    "era-composite": ("gauss3", lambda d: _composite(d, 0), 30, 8),
    "mixing-adaptive": ("mixnet", lambda d: _adaptive(d, [0.5, 0.2]), 40, 12),
}


def _argv(request: pytest.FixtureRequest, stage: str) -> list[str]:
    fixture, argv, _, _ = STAGES[stage]
    return argv(request.getfixturevalue(fixture))


def _shard(argv: list[str], out: Path, k: int, *extra: str) -> Path:
    assert main([*argv, "--shard", str(k), "--shards", str(SHARDS), *extra, "--out", str(out)]) == 0
    return shard_path(out, k, SHARDS)


def _merge(stage: str, out: Path, shards: list[Path]) -> int:
    return main(["merge", stage, "--out", str(out), *map(str, shards)])


def test_the_shards_partition_the_chunk_grid():
    for total, batch in ((30, 7), (40, 12), (5, 10), (36, 6)):
        chunks = [shard_chunks(total, batch, k, SHARDS) for k in range(SHARDS)]
        assert sorted(c for part in chunks for c in part) == list(range(0, total, batch))
        points = [i for k in range(SHARDS) for i in shard_indices(total, batch, k, SHARDS)]
        assert sorted(points) == list(range(total))
        assert all(c // batch % SHARDS == k for k, part in enumerate(chunks) for c in part)


@pytest.mark.slow
@pytest.mark.parametrize("stage", list(STAGES))
def test_merged_shards_equal_one_unsharded_job(stage, request, tmp_path):
    argv = _argv(request, stage)
    assert main([*argv, "--out", str(tmp_path / "one.csv")]) == 0
    out = tmp_path / "merged.csv"
    shards = [_shard(argv, out, k) for k in range(SHARDS)]
    total, batch = STAGES[stage][2], STAGES[stage][3]
    for k, path in enumerate(shards):  # each shard holds exactly its chunks' points
        frame, meta = read_records(path)
        assert sorted(frame["index"]) == shard_indices(total, batch, k, SHARDS)
        assert meta["shard"] == k and "summary_rows" not in meta
    assert _merge(stage, out, shards[::-1]) == 0
    assert out.read_text() == (tmp_path / "one.csv").read_text()  # row for row, byte for byte
    merged, one = read_json(out.with_suffix(".json")), read_json(tmp_path / "one.json")
    assert merged["summary_rows"] == one["summary_rows"] and merged["summary_rows"]
    assert merged["shards"] == SHARDS
    assert {k: v for k, v in merged.items() if k not in VOLATILE} == {k: v for k, v in one.items()
                                                                     if k not in VOLATILE}


@pytest.mark.slow
@pytest.mark.parametrize("stage", list(STAGES))
def test_a_stopped_shard_resumes_to_the_same_shard_records(stage, request, tmp_path):
    argv = _argv(request, stage)
    batch = STAGES[stage][3]
    whole = _shard(argv, tmp_path / "whole.csv", 0)
    stop = batch + 2  # inside the shard's second chunk
    path = _shard(argv, tmp_path / "resumed.csv", 0, "--stop-after", str(stop))
    partial = path.with_name(path.name + ".partial")
    assert not path.exists() and len(partial.read_text().splitlines()) == stop + 1
    assert _shard(argv, tmp_path / "resumed.csv", 0) == path
    assert path.read_text() == whole.read_text() and not partial.exists()
    strip = {"command"}
    assert ({k: v for k, v in read_json(path.with_suffix(".json")).items() if k not in strip}
            == {k: v for k, v in read_json(whole.with_suffix(".json")).items() if k not in strip})


@pytest.mark.slow
def test_the_merge_refuses_a_missing_or_foreign_shard(gauss3, tmp_path, capsys):  # noqa: F811
    argv = _robustness(gauss3, ROBUSTNESS)
    out = tmp_path / "robustness.csv"
    shards = [_shard(argv, out, k) for k in range(SHARDS)]
    capsys.readouterr()
    # a shard left out: the error names the file it should be
    assert _merge("era-robustness", out, [shards[0], shards[2]]) == EXIT_USER_ERROR
    assert f"{shards[1]}: missing" in capsys.readouterr().err
    # a shard that never finished (its records do not exist)
    stopped = _shard(argv, tmp_path / "other" / "robustness.csv", 1, "--stop-after", "3")
    capsys.readouterr()
    assert _merge("era-robustness", out, [shards[0], stopped, shards[2]]) == EXIT_USER_ERROR
    assert f"{stopped}: missing" in capsys.readouterr().err
    # a shard of another job (another seed)
    seed = argv.index("--seed")
    foreign = _shard([*argv[:seed + 1], "7", *argv[seed + 2:]], tmp_path / "seed7" / "robustness.csv", 1)
    capsys.readouterr()
    assert _merge("era-robustness", out, [shards[0], foreign, shards[2]]) == EXIT_USER_ERROR
    assert f"{foreign}: run_key differs" in capsys.readouterr().err
    # a shard given twice, and shards of another stage
    assert _merge("era-robustness", out, [shards[0], shards[1], shards[1]]) == EXIT_USER_ERROR
    assert f"{shards[1]}: shard 1 given twice" in capsys.readouterr().err
    assert _merge("era-composite", out, shards) == EXIT_USER_ERROR
    assert f"{shards[0]}: not a shard of a era-composite job" in capsys.readouterr().err
    assert not out.exists()
    # a shard whose job was a different split into shards
    other = _shard_of(argv, tmp_path / "two" / "robustness.csv", 0, 2)
    capsys.readouterr()
    assert _merge("era-robustness", out, [other, shards[1], shards[2]]) == EXIT_USER_ERROR
    assert f"{shards[1]}: shards differs from {other}'s" in capsys.readouterr().err


def _shard_of(argv: list[str], out: Path, k: int, n: int) -> Path:
    assert main([*argv, "--shard", str(k), "--shards", str(n), "--out", str(out)]) == 0
    return shard_path(out, k, n)


@pytest.mark.slow
def test_a_shard_number_outside_the_shards_is_refused(gauss3, tmp_path, capsys):  # noqa: F811
    argv = _robustness(gauss3, ROBUSTNESS)
    assert main([*argv, "--shard", "3", "--shards", "3", "--out", str(tmp_path / "r.csv")]) == EXIT_USER_ERROR
    assert "--shard 3 --shards 3" in capsys.readouterr().err


@pytest.mark.slow
def test_the_merge_does_not_import_torch(gauss3, tmp_path):  # noqa: F811
    argv = _robustness(gauss3, ROBUSTNESS)
    out = tmp_path / "robustness.csv"
    shards = [str(_shard(argv, out, k)) for k in range(SHARDS)]
    code = ("import sys\nfrom tradeoff.cli import main\n"
            f"rc = main(['merge', 'era-robustness', '--out', {str(out)!r}, *{shards!r}])\n"
            "assert rc == 0 and 'torch' not in sys.modules, sorted(m for m in sys.modules if 'torch' in m)\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert read_records(out)[1]["n_rows"] == 30


@pytest.mark.slow
def test_shards_without_chunks_merge_too(gauss3, tmp_path):  # noqa: F811
    """More shards than chunks (30 points in 5 chunks of 7, 7 shards): two shards hold no point."""
    argv = _robustness(gauss3, ROBUSTNESS)
    assert main([*argv, "--out", str(tmp_path / "one.csv")]) == 0
    out = tmp_path / "merged.csv"
    shards = [_shard_of(argv, out, k, 7) for k in range(7)]
    assert [read_json(p.with_suffix(".json"))["n_rows"] for p in shards] == [7, 7, 7, 7, 2, 0, 0]
    assert _merge("era-robustness", out, shards) == 0
    assert out.read_text() == (tmp_path / "one.csv").read_text()


@pytest.mark.slow
def test_one_shard_and_its_merge_equal_the_whole_job(gauss3, tmp_path):  # noqa: F811
    """The workflow's shape with attacks.shards = 1: one shard job (``--shards 1``) and the merge."""
    argv = _robustness(gauss3, ROBUSTNESS)
    assert main([*argv, "--out", str(tmp_path / "one.csv")]) == 0
    out = tmp_path / "merged.csv"
    shard = _shard_of(argv, out, 0, 1)
    assert shard == tmp_path / "shards" / "merged-0-of-1.csv" and not out.exists()
    assert _merge("era-robustness", out, [shard]) == 0
    assert out.read_text() == (tmp_path / "one.csv").read_text()
    merged, one = read_json(out.with_suffix(".json")), read_json(tmp_path / "one.json")
    assert merged["summary_rows"] == one["summary_rows"] and merged["shards"] == 1
