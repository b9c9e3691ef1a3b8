"""`tradeoff resources`: declared memory and time of each job against its extended benchmark record."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tradeoff.cli import main
from tradeoff.errors import EXIT_USER_ERROR, TradeoffError
from tradeoff.io import read_records
from tradeoff.resources import overruns, per_rule, read_benchmarks

HEADER = ("s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\tjobid\trule_name\t"
          "wildcards\tparams\tthreads\tcpu_usage\tresources\tinput_size_mb\n")


def _record(path: Path, rule: str, seconds: float, rss: float, mem_mb: int, runtime: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    resources = {"tmpdir": "/tmp", "_nodes": 1, "runtime": runtime, "gpu": 0, "mem_mb": mem_mb, "mem": "1 GB",
                 "_cores": 1}
    path.write_text(HEADER + f"{seconds:.2f}\t0:00:01\t{rss:.2f}\t3000\t300\t400\t0\t0\t50\t1.0\t0\t{rule}\t"
                    f"{{'dataset': 'digits'}}\t{{}}\t1\t90\t{resources}\t{{}}\n")


def test_jobs_within_and_over_their_declarations(tmp_path, capsys):
    root = tmp_path / "benchmarks"
    _record(root / "a" / "train.tsv", "train", 300.0, 950.0, 2000, 60)
    _record(root / "a" / "train2.tsv", "train", 100.0, 1200.0, 2000, 60)
    _record(root / "summary.tsv", "summary", 2.0, 80.0, 1000, 10)
    _record(root / "short.tsv", "summary", 0.2, 0.0, 1000, 10)
    short = root / "short.tsv"
    short.write_text(short.read_text().replace("\t0.00\t3000", "\tNA\t3000"))  # too short to be sampled
    jobs = read_benchmarks(root)
    assert len(jobs) == 4 and not overruns(jobs)
    assert [j.rule for j in jobs if math.isnan(j.max_rss_mb)] == ["summary"]
    assert {r["rule"]: r["max_rss_mb"] for r in per_rule(jobs)}["summary"] == 80.0
    table = {r["rule"]: r for r in per_rule(jobs)}
    assert table["train"]["jobs"] == 2 and table["train"]["max_rss_mb"] == 1200.0
    assert table["train"]["memory_share"] == pytest.approx(0.6)
    assert table["train"]["time_share"] == pytest.approx(300 / 3600)
    assert main(["resources", "--benchmarks", str(root), "--out", str(tmp_path / "jobs.csv")]) == 0
    frame, meta = read_records(tmp_path / "jobs.csv")
    assert len(frame) == 4 and meta["jobs"] == 4
    assert "| train | 2 | 2000 | 1200 | 0.60 | 60 | 300.0 | 0.083 |" in capsys.readouterr().out
    # a job over its memory, another over its time: refused in one line naming the worst one's record
    _record(root / "big.tsv", "evaluate", 10.0, 2500.0, 2000, 60)
    _record(root / "slow.tsv", "summary", 700.0, 100.0, 1000, 10)
    assert {j.rule for j in overruns(read_benchmarks(root))} == {"evaluate", "summary"}
    assert main(["resources", "--benchmarks", str(root)]) == EXIT_USER_ERROR
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("tradeoff: error:")]
    assert len(err) == 1 and "big.tsv: 2 of 6 jobs used more than they declared" in err[0], err


def test_a_record_without_declarations_or_with_a_garbled_row_is_named(tmp_path):
    plain = tmp_path / "plain" / "train.tsv"
    plain.parent.mkdir()
    plain.write_text("s\th:m:s\tmax_rss\n1.0\t0:00:01\t100\n")
    with pytest.raises(TradeoffError, match=r"train\.tsv: not an extended benchmark record"):
        read_benchmarks(plain.parent)
    garbled = tmp_path / "garbled" / "train.tsv"
    _record(garbled, "train", 1.0, 100.0, 1000, 10)
    garbled.write_text(garbled.read_text().replace("'mem_mb': 1000", "'mem_mb: 1000"))
    with pytest.raises(TradeoffError, match=r"train\.tsv, line 2: malformed benchmark row"):
        read_benchmarks(garbled.parent)
    with pytest.raises(TradeoffError, match="no benchmark records"):
        read_benchmarks(tmp_path / "empty")
