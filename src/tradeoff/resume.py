"""Resumable per-point jobs: a fixed grid of chunks, one random stream per chunk, the keyed writer.

A job evaluates every test point once and writes one row per point through
:class:`~tradeoff.io.ResumableCSV` under a key that fingerprints everything its rows depend on. Points are
processed in chunks of a fixed grid, ``[0, B), [B, 2B), ...`` of the batch size ``B``, whatever has already
been done; a chunk's random draws come from a generator seeded by ``(seed, first index of the chunk)``
(:func:`chunk_generator`). A chunk cut short by a kill is attacked again whole (same points, same draws)
and only its missing rows are written, so a resumed job writes exactly the rows of an uninterrupted one.
Because the grid decides which points share a chunk's draws, the batch size belongs to the key.

A job can be split into ``shards`` jobs: shard ``k`` runs the chunks ``c`` (first index ``c·B``) with
``c mod shards = k`` and writes its rows to its shard record (:func:`~tradeoff.shards.shard_path`),
resumable and keyed like the whole job (with ``shard`` and ``shards`` in the key); the light merge
(:func:`~tradeoff.point_records.merge_shards`) writes the records, summary rows and metadata of one
unsharded job.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .fingerprint import fingerprint
from .io import ResumableCSV, provenance
from .point_records import finish
from .seeding import seed_word
from .shards import check_shard, shard_chunks, shard_indices, shard_path

__all__ = ["PointJob", "StageOutput", "chunk_generator", "stage_output"]

log = logging.getLogger("tradeoff")


def chunk_generator(seed: int, start: int, bits: int = 64) -> torch.Generator:
    """A CPU generator for the chunk that starts at test index ``start``, seeded by
    :func:`~tradeoff.seeding.seed_word` ``(seed, start, bits=bits)`` (32 or 64 bits). Guarantee: a pure function
    of ``(seed, start, bits)``, so a resumed or re-chunked job draws the same numbers for the same chunk."""
    return torch.Generator(device="cpu").manual_seed(seed_word(seed, start, bits=bits))


@dataclass
class PointJob:
    """One resumable per-point job over test indices ``0..total−1``, written through a keyed
    :class:`~tradeoff.io.ResumableCSV`.

    ``run`` must hold everything the rows depend on (inputs' checksums, attack parameters, threat, seed,
    batch size); progress made under another ``run`` is set aside by the writer, never merged.
    ``stop_after`` stops the job after that many new rows (progress is kept; used to test resumption).
    With ``shards`` = n (even 1) the job is shard ``shard`` of n: it runs only its chunks (those ``c`` with
    ``c mod n = shard``) and writes to ``shard_path(out, shard, n)`` under the key of ``run`` with
    ``shard`` and ``shards`` added, for the merge; with ``shards`` None it is the whole job, writing ``out``.
    """

    out: str | Path
    columns: list[str]
    run: Mapping[str, Any]
    total: int
    batch_size: int
    stop_after: int | None = None
    shard: int = 0
    shards: int | None = None
    written: int = 0
    sink: ResumableCSV = field(init=False)
    _done: set[int] = field(init=False, default_factory=set)
    _size: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch size must be positive, got {self.batch_size}")
        check_shard(self.shard, self.n_shards)
        self._size = len(shard_indices(self.total, self.batch_size, self.shard, self.n_shards))
        self.sink = ResumableCSV(self.path, self.columns, key=self.key)
        self._done = {int(k) for k in self.sink.done_keys("index")}
        if self.sink.rows:
            log.info("resuming %s: %d of %d points already done", self.sink.partial, len(self.sink.rows), self._size)

    @property
    def size(self) -> int:
        """The number of points this job (its shard) evaluates."""
        return self._size

    @property
    def sharded(self) -> bool:
        """Whether this job is a shard (whose records a merge finishes)."""
        return self.shards is not None

    @property
    def n_shards(self) -> int:
        """The number of shards the points are split into (1 for the whole job)."""
        return self.shards if self.shards is not None else 1

    @property
    def path(self) -> Path:
        """The file this job writes: the records, or (sharded) the shard's records."""
        return shard_path(self.out, self.shard, self.n_shards) if self.sharded else Path(self.out)

    @property
    def key(self) -> str:
        """The writer's key: the fingerprint of ``run`` (with ``shard``/``shards`` when sharded)."""
        run = dict(self.run)
        return fingerprint({**run, "shard": self.shard, "shards": self.shards} if self.sharded else run)

    def chunks(self) -> Iterator[torch.Tensor]:
        """This job's chunks of the fixed grid that still miss a row, each whole (indices as a long tensor);
        stops early once ``stop_after`` new rows are written."""
        for start in shard_chunks(self.total, self.batch_size, self.shard, self.n_shards):
            if self.stopped:
                return
            idx = list(range(start, min(start + self.batch_size, self.total)))
            if not all(self.done(i) for i in idx):
                yield torch.tensor(idx, dtype=torch.long)

    def done(self, index: int) -> bool:
        """Whether point ``index`` already has its row."""
        return index in self._done

    @property
    def stopped(self) -> bool:
        return self.stop_after is not None and self.written >= self.stop_after

    def add(self, row: Mapping[str, Any]) -> None:
        """Write ``row`` unless its point is already recorded or the job is to stop."""
        if self.stopped or self.done(int(row["index"])):
            return
        self.sink.append(row)
        self._done.add(int(row["index"]))
        self.written += 1

    @property
    def complete(self) -> bool:
        """Whether every point of this job (of its shard) has its row."""
        return len(self._done) == self._size

    @property
    def rows(self) -> list[dict[str, str]]:
        """The rows recorded so far, by index (values as written, i.e. strings)."""
        return sorted(self.sink.rows, key=lambda r: int(r["index"]))


@dataclass
class StageOutput:
    """What a per-point stage function returns: the job (its records), the summary rows and the metadata of
    the records file. ``summary`` and ``meta`` are empty while the job is incomplete."""

    job: PointJob
    summary: list[dict[str, Any]]
    meta: dict[str, Any]

    @property
    def records(self) -> list[dict[str, str]]:
        return self.job.rows

    def write(self) -> bool:
        """Finalize the records file with ``meta`` if every point is done (returns True); otherwise keep the
        progress file, log where it is and return False."""
        if not self.job.complete:
            self.job.sink.close()
            log.info("stopped after %d of %d points as asked; progress kept in %s", len(self.job.sink.rows),
                     self.job.size, self.job.sink.partial)
            return False
        self.job.sink.finalize(self.meta, sort_key="index")
        if self.job.sharded:
            log.info("shard %d of %d: %d points written to %s", self.job.shard, self.job.shards,
                     len(self.job.sink.rows), self.job.path)
        return True


def stage_output(job: PointJob, context: Mapping[str, Any]) -> StageOutput:
    """The output of a per-point stage ``job`` with finish context ``context``
    (:func:`~tradeoff.point_records.finish_context`): nothing while incomplete; for a complete unsharded job
    :func:`~tradeoff.point_records.finish`'s summary rows and metadata; for a complete shard no summary and
    the metadata the merge needs (stage, unsharded key ``run_key``, shard, shards, total, batch size, the
    finish context)."""
    if not job.complete:
        return StageOutput(job, [], {})
    if job.sharded:
        meta = {"stage": context["stage"], "run_key": fingerprint(dict(job.run)), "run": dict(job.run),
                "shard": job.shard, "shards": job.shards, "total": job.total, "batch_size": job.batch_size,
                "finish": dict(context), "dataset": context["dataset"], "classifier": context["classifier"],
                **provenance(context["config"], context["seed"])}
        return StageOutput(job, [], meta)
    summary, meta = finish(context, job.rows)
    return StageOutput(job, summary, meta)
