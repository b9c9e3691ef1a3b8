"""Artifacts: atomic writes, checked reads, crash-safe per-sample progress files."""

import pytest
import torch

from tradeoff.io import (
    ArtifactError,
    ResumableCSV,
    load_torch,
    read_records,
    save_torch,
    write_records,
    write_text,
)


def test_atomic_write_leaves_old_file_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "a.txt"
    write_text(target, "old")
    import tradeoff.io as io_mod

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(io_mod.os, "replace", boom)
    with pytest.raises(OSError):
        write_text(target, "new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]  # no temp file left behind


def test_records_roundtrip_and_truncation_detected(tmp_path):
    path = tmp_path / "eval" / "x.csv"
    rows = [{"index": i, "label": i % 3, "value": i / 7} for i in range(50)]
    write_records(path, rows, {"what": "test"})
    frame, meta = read_records(path)
    assert len(frame) == 50 and meta["what"] == "test"
    assert frame["value"].tolist() == [i / 7 for i in range(50)]  # floats round-trip exactly
    path.write_text(path.read_text()[:-40])
    with pytest.raises(ArtifactError, match="x.csv"):
        read_records(path)


def test_missing_sidecar_is_named(tmp_path):
    path = tmp_path / "y.csv"
    path.write_text("a\n1\n")
    with pytest.raises(ArtifactError, match="y.json"):
        read_records(path)


def test_load_torch_rejects_pickled_objects_and_truncation(tmp_path):
    good = tmp_path / "w.pt"
    save_torch({"w": torch.ones(3)}, good)
    assert torch.equal(load_torch(good)["w"], torch.ones(3))
    evil = tmp_path / "evil.pt"
    torch.save({"f": print}, evil)  # arbitrary objects need weights_only=False: refused
    with pytest.raises(ArtifactError, match="evil.pt"):
        load_torch(evil)
    good.write_bytes(good.read_bytes()[:50])
    with pytest.raises(ArtifactError, match="w.pt"):
        load_torch(good)


def test_resumable_csv_keeps_complete_rows_and_drops_a_cut_line(tmp_path):
    path = tmp_path / "shard.csv"
    log = ResumableCSV(path, ["index", "radius"])
    for i in range(5):
        log.append({"index": i, "radius": i * 0.5})
    log.close()
    with open(log.partial, "a") as fh:  # a kill -9 in the middle of a write
        fh.write("5,2.")
    again = ResumableCSV(path, ["index", "radius"])
    assert again.done_keys("index") == {"0", "1", "2", "3", "4"}
    assert again.dropped_partial_line
    again.append({"index": 5, "radius": 2.5})
    again.finalize({"stage": "test"}, sort_key="index")
    frame, meta = read_records(path)
    assert frame["index"].tolist() == [0, 1, 2, 3, 4, 5] and meta["n_rows"] == 6
    assert not log.partial.exists()
