"""Derived seeds: one integer per (master seed, keys), independent of what else runs in the same job.

Per-batch and per-point randomness is seeded from the master seed and the batch's (or point's) position,
never from a stream shared across a job, so that splitting the points into shards, resuming a killed job
or changing the device's batch order gives the same draws for the same points.
"""

from __future__ import annotations

import hashlib

import numpy as np

__all__ = ["derive_seed", "seed_word"]


def _as_int(key: int | str) -> int:
    if isinstance(key, str):
        # a stable integer for a name (Python's hash() of a str changes between processes)
        return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little")
    return int(key)


def seed_word(seed: int, *keys: int | str, bits: int = 64) -> int:
    """The first ``bits``-bit word (32 or 64) of numpy's ``SeedSequence([seed, *keys])`` state, as an int.

    Guarantee: a pure function of its arguments, the same in every process; equal to
    ``int(np.random.SeedSequence([seed, *keys]).generate_state(1, dtype)[0])`` with ``dtype`` uint32 or uint64,
    so seeds written that way before keep their values.
    """
    dtype = {32: np.uint32, 64: np.uint64}[bits]
    return int(np.random.SeedSequence([int(seed), *(_as_int(k) for k in keys)]).generate_state(1, dtype=dtype)[0])


def derive_seed(seed: int, *keys: int | str) -> int:
    """A 63-bit seed for ``(seed, *keys)`` through numpy's ``SeedSequence`` (hash-mixed, so nearby tuples
    give unrelated streams). Guarantee: a pure function of its arguments, the same in every process."""
    return seed_word(seed, *keys) >> 1
