"""How every per-point stage splits its test points into shards (attack evaluation, robustness records, the
ERA composite, the mixing network's adaptive attack, certification, probabilistic certification).

The points ``0..total−1`` are cut into the chunks of a fixed grid ``[0, B), [B, 2B), ...`` of a batch size
``B``; shard ``k`` of ``n`` runs the chunks ``c`` (first index ``c·B``) with ``c mod n = k``. With ``B = 1``
this is the round robin ``k, k + n, k + 2n, ...``. The shards partition the points, and a point's chunk
does not depend on ``n``, so a stage that seeds each chunk by its first index gets the same rows however
the points are sharded. No torch here.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

import numpy as np

from .errors import TradeoffError

T = TypeVar("T")

__all__ = ["check_shard", "shard_chunks", "shard_indices", "shard_items", "shard_path"]


def check_shard(shard: int, shards: int) -> None:
    """Raise :class:`~tradeoff.errors.TradeoffError` unless ``0 ≤ shard < shards``."""
    if shards < 1 or not 0 <= shard < shards:
        raise TradeoffError(f"--shard {shard} --shards {shards}: need 0 ≤ shard < shards")


def shard_chunks(total: int, batch_size: int, shard: int, shards: int) -> list[int]:
    """First indices of the chunks of the grid ``[0, B), [B, 2B), ...`` over ``total`` points that shard
    ``shard`` of ``shards`` runs: chunk ``c`` (first index ``c·B``) with ``c mod shards = shard``. The shards
    partition the chunks."""
    return [start for start in range(0, total, batch_size) if (start // batch_size) % shards == shard]


def shard_indices(total: int, batch_size: int, shard: int, shards: int) -> list[int]:
    """The indices shard ``shard`` of ``shards`` runs, in order (``batch_size`` 1: the round robin
    ``shard, shard + shards, ...``)."""
    return [i for start in shard_chunks(total, batch_size, shard, shards)
            for i in range(start, min(start + batch_size, total))]


def shard_items(items: Sequence[T] | np.ndarray, shard: int, shards: int) -> list[T] | np.ndarray:
    """The entries of ``items`` (e.g. the selected test indices) at the positions shard ``shard`` of ``shards``
    runs with chunks of one entry (round robin); a NumPy array stays an array.
    :class:`~tradeoff.errors.TradeoffError` unless ``0 ≤ shard < shards``."""
    check_shard(shard, shards)
    positions = shard_indices(len(items), 1, shard, shards)
    if isinstance(items, np.ndarray):
        return items[positions]
    return [items[i] for i in positions]


def shard_path(out: str | Path, shard: int, shards: int) -> Path:
    """Where shard ``shard`` of ``shards`` of the job writing the records ``out`` keeps its rows:
    ``<folder of out>/shards/<stem of out>-<shard>-of-<shards>.csv``."""
    out = Path(out)
    return out.parent / "shards" / f"{out.stem}-{shard}-of-{shards}.csv"
