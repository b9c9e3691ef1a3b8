"""Resumable per-point jobs: a fixed grid of chunks, one random stream per chunk, the keyed writer.

A job evaluates every test point once and writes one row per point through
:class:`~tradeoff.io.ResumableCSV` under a key that fingerprints everything its rows depend on. Points are
processed in chunks of a fixed grid, ``[0, B), [B, 2B), ...`` of the batch size ``B``, whatever has already
been done; a chunk's random draws come from a generator seeded by ``(seed, first index of the chunk)``
(:func:`chunk_generator`). A chunk cut short by a kill is attacked again whole (same points, same draws)
and only its missing rows are written, so a resumed job writes exactly the rows of an uninterrupted one.
Because the grid decides which points share a chunk's draws, the batch size belongs to the key.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .io import ResumableCSV
from .train import fingerprint

__all__ = ["PointJob", "StageOutput", "chunk_generator"]

log = logging.getLogger("tradeoff")


def chunk_generator(seed: int, start: int, bits: int = 64) -> torch.Generator:
    """A CPU generator for the chunk that starts at test index ``start``: seeded by numpy's
    ``SeedSequence([seed, start])`` state word of ``bits`` (32 or 64) bits. Guarantee: a pure function of
    ``(seed, start, bits)``, so a resumed or re-chunked job draws the same numbers for the same chunk."""
    dtype = {32: np.uint32, 64: np.uint64}[bits]
    state = np.random.SeedSequence([int(seed), int(start)]).generate_state(1, dtype=dtype)
    return torch.Generator(device="cpu").manual_seed(int(state[0]))


@dataclass
class PointJob:
    """One resumable per-point job over test indices ``0..total−1``, written through a keyed
    :class:`~tradeoff.io.ResumableCSV`.

    ``run`` must hold everything the rows depend on (inputs' checksums, attack parameters, threat, seed,
    batch size); progress made under another ``run`` is set aside by the writer, never merged.
    ``stop_after`` stops the job after that many new rows (progress is kept; used to test resumption).
    """

    out: str | Path
    columns: list[str]
    run: Mapping[str, Any]
    total: int
    batch_size: int
    stop_after: int | None = None
    written: int = 0
    sink: ResumableCSV = field(init=False)
    _done: set[int] = field(init=False, default_factory=set)

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch size must be positive, got {self.batch_size}")
        self.sink = ResumableCSV(self.out, self.columns, key=fingerprint(dict(self.run)))
        self._done = {int(k) for k in self.sink.done_keys("index")}
        if self.sink.rows:
            log.info("resuming %s: %d of %d points already done", self.sink.partial, len(self.sink.rows), self.total)

    def chunks(self) -> Iterator[torch.Tensor]:
        """The chunks of the fixed grid that still miss a row, each whole (indices as a long tensor); stops
        early once ``stop_after`` new rows are written."""
        for start in range(0, self.total, self.batch_size):
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
        return len(self.sink.rows) == self.total

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
                     self.job.total, self.job.sink.partial)
            return False
        self.job.sink.finalize(self.meta, sort_key="index")
        return True
