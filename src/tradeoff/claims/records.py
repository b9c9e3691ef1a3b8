"""Lazy reading of the per-point records a claim needs, keyed by (classifier, evaluation, threat, seed).

Inputs
------
``records``: a mapping ``{(classifier, evaluation, threat_id[, seed]): record}`` where a record is a path to a
CSV written by :func:`tradeoff.io.write_records` (a missing file is allowed: the claims that need it are *not
testable*) or an already loaded :class:`pandas.DataFrame`.  A key of three parts is training seed 0.
``threat_id`` is the threat's path component (e.g. ``linf-0.3``; its trailing number is read as ε to order
threats) or ``none`` for records that do not depend on a threat.  The keys the claims read (``<t>`` = every
threat id present):

============================================  ==========================================================
key                                           columns used (record kind)
============================================  ==========================================================
(c, ``worst`` | ``adaptive`` | ``autoattack``  ``label``, ``clean_prediction``, ``correct`` (attack
| ``pgd``, <t>) for ``standard``, the robust   records; the first evaluation present in
models, ``mix-prob-<a>``, ``mix-logit-<a>``,   :attr:`ClaimOptions.robust_evaluations` is used, its clean
``mixnet``                                     columns give the clean accuracy)
(``mixnet``, ``adaptive``, <t>)               ``alpha_clean``, ``alpha_adaptive`` (the network's α per point)
(``tsipras-<name>``, ``exact``, <t>)          ``clean_correct``, ``correct`` (exact worst case, linear models)
(robust base, ``confidence``, <t>)            ``index``, ``adv_margin``, ``clean_margin``, ``clean_correct``
(c, ``robustness``, <t>) for ``era``,         ``correct``, ``robust``, ``robust_accurate``,
``trades``, ``standard``; and                  ``robust_inaccurate`` (attack on the own prediction)
(``gauss3-<m>``, ``robustness``, ``none``)
(composite, ``composite``, <t>)               ``correct``, ``robust_accurate``, ``robust_inaccurate``
(c, ``certify-prob-sequential`` |             ``label``, ``reference``, ``outcome``, ``samples``
``certify-prob-fixed``, <t>)
(``gauss_aug-<s>``, ``certify-rs``, none)     ``label``, ``prediction``, ``radius`` (Cohen et al.'s CERTIFY)
(``gauss_aug-<s>``, ``certify-mixed``, none)  ``label``, ``alpha``, ``prediction``, ``radius_rs``
============================================  ==========================================================

Guarantee: no missing or unreadable record raises; :meth:`Records.get` returns ``None`` and the reason is kept.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

import numpy as np
import pandas as pd

Key = tuple[str, str, str, int]
RecordMap = Mapping[tuple, "str | os.PathLike[str] | pd.DataFrame"]
T = TypeVar("T")

ANY = "any threat"
"""Stand-in threat id of a claim whose records exist at no threat (its one row is then not testable)."""


def _key(key: tuple) -> Key:
    if len(key) == 3:
        return (str(key[0]), str(key[1]), str(key[2]), 0)
    if len(key) == 4:
        return (str(key[0]), str(key[1]), str(key[2]), int(key[3]))
    raise ValueError(f"record key {key!r}: expected (classifier, evaluation, threat[, seed])")


def threat_eps(threat: str) -> float:
    """ε from a threat id such as ``linf-0.3`` (inf if none can be read)."""
    match = re.search(r"(\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)$", threat)
    return float(match.group(1)) if match else math.inf


def by_eps(threats: Sequence[str] | set[str]) -> list[str]:
    return sorted(threats, key=lambda t: (threat_eps(t), t))


class Records:
    """Lazy, cached access to the record mapping; a missing or unreadable record is ``None`` with a reason."""

    def __init__(self, records: RecordMap) -> None:
        self._raw = {_key(k): v for k, v in records.items()}
        self._cache: dict[Key, pd.DataFrame | None] = {}
        self.problems: dict[Key, str] = {}

    def keys(self, seed: int | None = None) -> list[tuple[str, str, str]]:
        """(classifier, evaluation, threat) of every record (of one training seed, or of any)."""
        return list(dict.fromkeys(k[:3] for k in self._raw if seed is None or k[3] == seed))

    def seeds(self) -> list[int]:
        """The training seeds with records (``[0]`` when there is none)."""
        return sorted({k[3] for k in self._raw}) or [0]

    def get(self, classifier: str, evaluation: str, threat: str, seed: int = 0) -> pd.DataFrame | None:
        key = (classifier, evaluation, threat, seed)
        if key not in self._cache:
            self._cache[key] = self._load(key)
        return self._cache[key]

    def _load(self, key: Key) -> pd.DataFrame | None:
        value = self._raw.get(key)
        if value is None:
            self.problems[key] = "no such record in this run"
            return None
        if isinstance(value, pd.DataFrame):
            return value
        path = Path(value)
        if not path.is_file():
            self.problems[key] = f"{path} is missing"
            return None
        try:
            from ..io import read_records, sidecar

            return read_records(path)[0] if sidecar(path).is_file() else pd.read_csv(path)
        except Exception as exc:  # noqa: BLE001 -- an unreadable record makes its claims not testable
            self.problems[key] = f"{path} is unreadable ({exc})"
            return None

    def per_seed(self, load: Callable[[int], T | None]) -> dict[int, T]:
        """``{seed: load(seed)}`` over the training seeds where ``load`` finds its records."""
        out = {}
        for seed in self.seeds():
            value = load(seed)
            if value is not None:
                out[seed] = value
        return out

    def dataset(self) -> str:
        """The dataset's name from the record paths (``results/<dataset>/...``), or a neutral phrase."""
        names = set()
        for value in self._raw.values():
            if not isinstance(value, pd.DataFrame):
                parts = Path(value).parts
                if "results" in parts and parts.index("results") + 1 < len(parts):
                    names.add(parts[parts.index("results") + 1])
        names -= {"tsipras", "gauss3"}
        return sorted(names)[0] if len(names) == 1 else "this run's data"

    def threats(self) -> list[str]:
        """Threat ids present (not ``none``), ordered by their ε."""
        return by_eps({t for _, _, t, _ in self._raw if t != "none"})

    def classifiers(self, pattern: str) -> list[str]:
        return sorted({c for c, _, _, _ in self._raw if re.fullmatch(pattern, c)})

    def robust(self, classifier: str, threat: str, preference: Sequence[str], seed: int = 0
               ) -> tuple[pd.DataFrame | None, str]:
        """The first attack record of ``classifier`` at ``threat`` in ``preference`` order, and its evaluation."""
        for evaluation in preference:
            frame = self.get(classifier, evaluation, threat, seed)
            if frame is not None:
                return frame, evaluation
        return None, preference[0]

    def why(self, classifier: str, evaluations: Sequence[str], threat: str) -> str:
        """Why no record of ``classifier`` at ``threat`` could be used (missing, or unreadable and why)."""
        found = [msg for k, msg in self.problems.items() if k[0] == classifier and k[1] in evaluations
                 and k[2] == threat and k in self._raw]
        return f"no {'/'.join(evaluations)} record of {classifier} at {threat}" + (
            f" ({'; '.join(found)})" if found else "")

    def threats_for(self, classifiers: Sequence[str] | str, evaluations: Sequence[str]) -> list[str]:
        """Threat ids at which some classifier (a list, or a regular expression) has a record of an evaluation.

        A claim is checked at each of them, so a stage that runs at only some threats adds rows only there;
        with none, the claim's one row is ``not testable`` (threat id :data:`ANY`).
        """
        def match(c: str) -> bool:
            return bool(re.fullmatch(classifiers, c)) if isinstance(classifiers, str) else c in classifiers

        return by_eps({t for c, e, t, _ in self._raw if match(c) and e in evaluations and t != "none"}) or [ANY]


def cid(base: str, threat: str) -> str:
    return base if threat == ANY else f"{base}-{threat}"


def aligned(*frames: pd.DataFrame) -> list[pd.DataFrame]:
    """The frames restricted to the test points (``index``) they all share, in the same order."""
    common = set(frames[0]["index"])
    for f in frames[1:]:
        common &= set(f["index"])
    keep = sorted(common)
    return [f.drop_duplicates("index").set_index("index").loc[keep].reset_index() for f in frames]


def clean_correct(frame: pd.DataFrame) -> np.ndarray:
    if "clean_prediction" in frame:
        return (frame["clean_prediction"].to_numpy() == frame["label"].to_numpy()).astype(np.float64)
    return frame["correct"].to_numpy(dtype=np.float64)


def col(frame: pd.DataFrame, column: str) -> np.ndarray:
    return frame[column].to_numpy(dtype=np.float64)


def pct(value: float) -> str:
    return f"{100 * value:.1f}%" if np.isfinite(value) else "–"


def seeds_note(seeds: Sequence[int]) -> str:
    """``""`` for the one default seed, else ``", seeds 0-4"``-style text for the setting column."""
    return "" if list(seeds) == [0] else f", training seeds {', '.join(map(str, seeds))}"
