"""Artifact input/output: atomic writes, checked reads, provenance records.

Every file the pipeline produces goes through this module so that

* a reader never sees a half-written file: writes go to a temporary file in the same directory, are
  flushed to disk and then renamed over the target (``os.replace`` is atomic on POSIX);
* a corrupt, truncated or missing artifact raises :class:`ArtifactError` naming the file, instead of
  being used silently;
* checkpoints are loaded with ``torch.load(..., weights_only=True)``, which refuses to unpickle
  arbitrary objects;
* a full disk (or quota) while writing raises :class:`ArtifactError` naming the file being written, with no
  half-written file left under a final name (:func:`disk_full_named`).
"""

from __future__ import annotations

import contextlib
import csv
import errno
import hashlib
import io
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from .errors import TradeoffError

_log = logging.getLogger("tradeoff")

# torch is imported only where a checkpoint is read or written: jobs that only read records start without it


ArtifactError = TradeoffError
"""An input artifact is missing, truncated or inconsistent with its metadata: the one user-facing error type
(:class:`tradeoff.errors.TradeoffError`), under the name the readers of artifacts have always raised."""


@contextlib.contextmanager
def disk_full_named(path: str | os.PathLike) -> Iterator[None]:
    """Turn a full disk or quota (``ENOSPC``, ``EDQUOT``) met while writing ``path`` into one
    :class:`ArtifactError` naming ``path`` and the space left on its file system; other errors pass."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        where = Path(path).parent
        free = shutil.disk_usage(where).free if where.is_dir() else 0
        raise ArtifactError(f"{path}: no space left on device while writing it ({free} bytes free in {where}); "
                            "free space and rerun: finished work is kept and resumed") from exc


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it over ``path`` atomically.

    On an exception the temporary file is removed and ``path`` is left untouched.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        with disk_full_named(target):
            yield tmp_path
            with open(tmp_path, "rb") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    write_bytes(path, text.encode("utf-8"))


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_torch(obj: Any, path: str | os.PathLike) -> str:
    """``torch.save`` atomically; returns the SHA-256 of the written file."""
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    data = buffer.getvalue()
    write_bytes(path, data)
    return hashlib.sha256(data).hexdigest()


def load_torch(path: str | os.PathLike, expected_sha256: str | None = None) -> Any:
    """Load a tensor/state-dict file with ``weights_only=True``.

    Raises :class:`ArtifactError` naming ``path`` if it is missing, truncated, not a torch file, or its
    SHA-256 differs from ``expected_sha256``.
    """
    p = Path(path)
    if not p.is_file():
        raise ArtifactError(f"{p}: missing (run the stage that produces it)")
    if expected_sha256 is not None and sha256_file(p) != expected_sha256:
        raise ArtifactError(f"{p}: checksum differs from its metadata (file modified or truncated)")
    import torch

    try:
        return torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a bad file
        raise ArtifactError(f"{p}: corrupt or truncated torch file ({type(exc).__name__}: {exc})") from exc


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON atomically (keys sorted, so equal content gives equal bytes)."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file; :class:`ArtifactError` naming the file if missing or malformed."""
    p = Path(path)
    if not p.is_file():
        raise ArtifactError(f"{p}: missing (run the stage that produces it)")
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{p}: corrupt or truncated JSON ({exc})") from exc


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (set, tuple)):
        return list(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


# ----------------------------------------------------------------------------------------------------------
# Per-sample records: CSV + JSON sidecar (metadata, row count, checksum)
# ----------------------------------------------------------------------------------------------------------


def sidecar(path: str | os.PathLike) -> Path:
    """The JSON metadata file that accompanies a CSV or checkpoint."""
    p = Path(path)
    return p.with_suffix(".json")


def write_records(
    path: str | os.PathLike,
    rows: Sequence[Mapping[str, Any]],
    meta: Mapping[str, Any],
    columns: Sequence[str] | None = None,
) -> None:
    """Write per-sample ``rows`` to a CSV and ``meta`` (+ row count and checksum) to its JSON sidecar.

    Both files are written atomically; the sidecar is written last so that a present sidecar implies a
    complete CSV.
    """
    cols = list(columns) if columns is not None else (list(rows[0].keys()) if rows else [])
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=cols, lineterminator="\n", extrasaction="raise")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _csv_value(v) for k, v in row.items()})
    data = buffer.getvalue().encode("utf-8")
    write_bytes(path, data)
    full_meta = dict(meta)
    full_meta["n_rows"] = len(rows)
    full_meta["sha256"] = hashlib.sha256(data).hexdigest()
    full_meta["columns"] = cols
    write_json(sidecar(path), full_meta)


def _csv_value(value: Any) -> Any:
    if isinstance(value, float):
        return repr(value)
    if hasattr(value, "item"):
        return _csv_value(value.item())
    return value


def check_records(path: str | os.PathLike) -> dict[str, Any]:
    """The sidecar of the records file ``path`` once the file is checked against it.

    Raises :class:`ArtifactError` naming the file when it or its sidecar is missing, or when its checksum
    differs from the sidecar's; the message names the first malformed line when there is one
    (:func:`malformed_line`), e.g. a row garbled by a disk or copy error."""
    p = Path(path)
    if not p.is_file():
        raise ArtifactError(f"{p}: missing (run the stage that produces it)")
    meta = read_json(sidecar(p))
    if sha256_file(p) != meta.get("sha256"):
        bad = malformed_line(p)
        where = f"{p}, line {bad[0]}: malformed row ({bad[1]}); " if bad else f"{p}: "
        raise ArtifactError(f"{where}checksum differs from {sidecar(p).name} (file truncated or modified)")
    return meta


def read_records(path: str | os.PathLike) -> tuple[Any, dict[str, Any]]:
    """Read a per-sample CSV written by :func:`write_records`, verified against its sidecar.

    Returns ``(DataFrame, meta)``. Raises :class:`ArtifactError` naming the file (and the line of a malformed
    row) when the CSV or its sidecar is missing, or when the CSV's checksum or row count differs from the
    sidecar's (:func:`check_records`).
    """
    import pandas as pd

    p = Path(path)
    meta = check_records(p)
    frame = pd.read_csv(p)
    if len(frame) != meta.get("n_rows"):
        raise ArtifactError(f"{p}: {len(frame)} rows, metadata says {meta.get('n_rows')}")
    return frame, meta


def _row_fault(line: bytes, width: int) -> tuple[list[str] | None, str]:
    """The fields of one CSV line (without its newline) and, if it is not a well-formed row of ``width``
    fields, why (else an empty string)."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, f"bytes that are not UTF-8 at column {exc.start + 1}"
    if "\0" in text:
        return None, f"a NUL byte at column {text.index(chr(0)) + 1}"
    fields = next(csv.reader([text]), [])
    if len(fields) != width:
        return fields, f"{len(fields)} fields, the header has {width}"
    return fields, ""


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def malformed_line(path: str | os.PathLike) -> tuple[int, str] | None:
    """The first malformed line of the CSV ``path`` as ``(line number, reason)`` (the header is line 1), or
    None. A line is malformed when it is not UTF-8, holds a NUL byte, has another number of fields than the
    header, or holds a non-number in a column that holds numbers on every other line."""
    lines = Path(path).read_bytes().split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    if not lines:
        return None
    header = next(csv.reader([lines[0].decode("utf-8", errors="replace")]), [])
    width = len(header)
    parsed: list[tuple[int, list[str]]] = []
    for number, line in enumerate(lines[1:], start=2):
        fields, fault = _row_fault(line, width)
        if fault:
            return number, fault
        parsed.append((number, fields or []))
    for col in range(width):
        odd = [(n, f[col]) for n, f in parsed if f[col] != "" and not _is_number(f[col])]
        if len(odd) == 1 and len(parsed) >= 3:
            return odd[0][0], f"'{odd[0][1]}' in column {header[col]!r}, which holds numbers on every other line"
    return None


class ResumableCSV:
    """An append-only CSV for per-sample work that must survive being killed.

    Rows go to ``<path>.partial`` and are flushed and fsynced one by one. Re-opening after a crash keeps
    every complete row and drops a trailing line cut off mid-write (a row is complete when it ends with a
    newline and has the header's number of fields). :meth:`finalize` atomically renames the progress
    file to ``path``.

    ``closes`` tells which rows close a unit of work (default: every row, e.g. one row per point; the closing
    row of a batch for a job that writes batch by batch). A malformed line (:func:`malformed_line`'s sense:
    a disk or copy error, not a kill) after the last closing row belongs to an unfinished unit and is dropped
    with it; one before it lies inside finished work, and re-opening raises :class:`ArtifactError` naming the
    progress file and the line rather than silently redoing or keeping it.

    ``key`` is a fingerprint of everything the rows depend on (the job's inputs and parameters, not its
    batch size or device). A progress file is resumed only under the same key: one made under another key
    (or with none recorded) is set aside as ``<path>.partial.foreign`` with a log line and never merged, so a
    job killed and rerun after a config change starts afresh.
    """

    def __init__(self, path: str | os.PathLike, columns: Sequence[str], key: str | None = None,
                 closes: Callable[[Mapping[str, str]], bool] | None = None):
        self.path = Path(path)
        self.closes = closes or (lambda row: True)
        self.partial = self.path.with_name(self.path.name + ".partial")
        self.key_path = self.path.with_name(self.path.name + ".partial.key")
        self.columns = list(columns)
        self.rows: list[dict[str, str]] = []
        self.dropped_partial_line = False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if key is not None:
            recorded = self.key_path.read_text().strip() if self.key_path.exists() else None
            if self.partial.exists() and recorded != key:
                foreign = self.partial.with_name(self.partial.name + ".foreign")
                os.replace(self.partial, foreign)
                _log.warning("%s: progress made with other inputs or parameters (key %s, this run %s); set "
                             "aside as %s, starting afresh", self.partial, recorded, key, foreign.name)
            write_text(self.key_path, key + "\n")
        if self.partial.exists():
            self._recover()
        else:
            self._rewrite()
        self._fh = open(self.partial, "ab", buffering=0)

    def _recover(self) -> None:
        data = self.partial.read_bytes()
        lines = data.split(b"\n")
        if not data.endswith(b"\n"):
            self.dropped_partial_line = bool(lines[-1])
        lines = lines[:-1]  # drop the (possibly empty or cut) remainder
        header, fault = _row_fault(lines[0], len(self.columns)) if lines else (None, "empty")
        if fault or header != self.columns:
            self.rows = []
            self._rewrite()
            return
        malformed: tuple[int, str] | None = None  # the first malformed line since the last closing row
        for number, line in enumerate(lines[1:], start=2):
            fields, fault = _row_fault(line, len(self.columns))
            if fault:
                malformed = malformed or (number, fault)
                continue
            row = dict(zip(self.columns, fields or [], strict=True))
            if malformed and self.closes(row):
                raise ArtifactError(f"{self.partial}, line {malformed[0]}: malformed row ({malformed[1]}) inside "
                                    "finished work (a disk or copy error); move the file aside to restart the job")
            self.rows.append(row)
        self.dropped_partial_line = self.dropped_partial_line or malformed is not None
        self._rewrite()

    def _rewrite(self) -> None:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=self.columns, lineterminator="\n")
        writer.writeheader()
        for row in self.rows:
            writer.writerow(row)
        write_text(self.partial, buffer.getvalue())

    def done_keys(self, key: str) -> set[str]:
        """Values of column ``key`` over the rows already recorded (as strings)."""
        return {row[key] for row in self.rows}

    def append(self, row: Mapping[str, Any]) -> None:
        """Append one row and force it to disk."""
        self.append_many([row])

    def append_many(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Append ``rows`` in order and force them to disk once (a batch's rows, then its closing row)."""
        cleaned = [{k: _csv_value(row[k]) for k in self.columns} for row in rows]
        buffer = io.StringIO()
        csv.DictWriter(buffer, fieldnames=self.columns, lineterminator="\n").writerows(cleaned)
        data = memoryview(buffer.getvalue().encode("utf-8"))
        with disk_full_named(self.partial):  # unbuffered: nothing is left to be written at exit
            while data:
                data = data[self._fh.write(data):]
            os.fsync(self._fh.fileno())
        self.rows.extend({k: str(v) for k, v in c.items()} for c in cleaned)

    def retain(self, keep: Callable[[Mapping[str, str]], bool]) -> None:
        """Drop the recorded rows for which ``keep`` is false (e.g. a batch cut off before its closing row),
        on disk too."""
        kept = [r for r in self.rows if keep(r)]
        if len(kept) == len(self.rows):
            return
        self._fh.close()
        self.rows = kept
        self._rewrite()
        self._fh = open(self.partial, "ab", buffering=0)

    def finalize(self, meta: Mapping[str, Any], sort_key: str | None = None) -> None:
        """Write the complete CSV (sorted by ``sort_key``) and its sidecar, then drop the progress file."""
        self._fh.close()
        rows = self.rows
        if sort_key is not None:
            rows = sorted(rows, key=lambda r: float(r[sort_key]))
        write_records(self.path, rows, meta, columns=self.columns)
        self.partial.unlink(missing_ok=True)
        self.key_path.unlink(missing_ok=True)

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()

    def discard(self) -> None:
        """Close and delete the progress file and its key (once its rows have been written elsewhere)."""
        self.close()
        self.partial.unlink(missing_ok=True)
        self.key_path.unlink(missing_ok=True)


# ----------------------------------------------------------------------------------------------------------
# Provenance
# ----------------------------------------------------------------------------------------------------------


def git_commit(start: str | os.PathLike | None = None) -> str:
    """The git commit of the working tree (``+dirty`` if it has uncommitted changes), or ``unknown``."""
    env_commit = os.environ.get("TRADEOFF_GIT_COMMIT")
    if env_commit:
        return env_commit
    cwd = Path(start) if start is not None else Path.cwd()
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd, capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()
        return commit + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def package_versions() -> dict[str, str]:
    """Versions of the packages that determine numerical results."""
    from importlib import metadata

    versions = {"python": platform.python_version()}
    for name in ("tradeoff", "torch", "torchvision", "numpy", "scipy", "pyautoattack", "scikit-learn"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def provenance(config: Mapping[str, Any] | None = None, seed: int | None = None) -> dict[str, Any]:
    """The record every result carries: the config it was made with, its seed, versions and commit."""
    return {
        "config": dict(config or {}),
        "seed": seed,
        "versions": package_versions(),
        "git_commit": git_commit(),
        "command": " ".join(sys.argv),
    }
