"""Descriptions of mixed classifiers and their temperatures (no torch here, so that ``mixing-spec``, which only
writes JSON, starts without importing it; the models themselves are in :mod:`tradeoff.mixing`).

A mixed classifier's JSON (kind ``mix``, or ``mixnet`` for a learned mixing network) references its accurate
base model ``g`` and robust base model ``h`` by paths relative to itself, with their checksums, and carries
the inverse temperatures ``T_g``, ``T_h`` of the mixture (Bai et al. 2024); ``mixing-temperatures`` chooses those
by temperature scaling on the calibration split (Guo et al. 2017).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..io import ArtifactError, read_json, write_json

MODES = ("prob", "logit")
"""How a mixture combines ``g`` and ``h``: probabilities (``prob``) or logits (``logit``)."""


def spec_digest(obj: Any) -> str:
    """SHA-256 of a JSON-able description (the identity of a composite without weights of its own)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def relative_path(target: str | Path, out: str | Path) -> str:
    """Path of ``target`` relative to the folder of ``out`` (classifier JSONs reference each other so)."""
    return os.path.relpath(Path(target).resolve(), Path(out).resolve().parent)


def resolve_temperatures(temperatures: str | Path | None, temp_g: float, temp_h: float, *,
                         accurate: str | Path | None = None, robust: str | Path | None = None
                         ) -> tuple[float, float]:
    """``(T_g, T_h)``: those of the JSON ``temperatures`` written by ``mixing-temperatures``, or ``temp_g`` and
    ``temp_h`` unchanged when it is None. Raises :class:`ArtifactError` unless the file was fitted for the
    base models ``accurate`` and ``robust`` that are given (their ``sha256``)."""
    if temperatures is None:
        return temp_g, temp_h
    temps = read_json(temperatures)
    for role, path in (("accurate", accurate), ("robust", robust)):
        if path is not None and read_json(path)["sha256"] != temps[f"{role}_sha256"]:
            raise ArtifactError(f"{temperatures}: fitted for another {role} model than {path}")
    return float(temps["temp_g"]), float(temps["temp_h"])


def write_mix_specs(accurate: str | Path, robust: str | Path, alphas: Sequence[float], names: Sequence[str],
                    outs: Sequence[str | Path], *, mode: str, temp_g: float = 1.0, temp_h: float = 1.0,
                    temperatures: str | Path | None = None) -> list[dict[str, Any]]:
    """The ``mixing-spec`` stage: write one fixed-α mixture JSON (kind ``mix``) per ``(α, name, out)``, with the
    temperatures of :func:`resolve_temperatures`. Each ``sha256`` is :func:`spec_digest` of the description
    with its base models' checksums, so it changes with α, mode, temperatures and either base model. Raises
    :class:`ArtifactError` when ``accurate`` and ``robust`` are models of different data. Returns the JSONs."""
    temp_g, temp_h = resolve_temperatures(temperatures, temp_g, temp_h, accurate=accurate, robust=robust)
    g, h = read_json(accurate), read_json(robust)
    if g["dataset"] != h["dataset"] or g["num_classes"] != h["num_classes"]:
        raise ArtifactError(f"{accurate} and {robust} are models of different data")
    written = []
    for alpha, name, out in zip(alphas, names, outs, strict=True):
        body = {"kind": "mix", "name": name, "dataset": g["dataset"], "num_classes": g["num_classes"],
                "accurate": relative_path(accurate, out), "robust": relative_path(robust, out),
                "alpha": alpha, "mode": mode, "temp_g": temp_g, "temp_h": temp_h}
        body["sha256"] = spec_digest({**body, "accurate_sha256": g["sha256"], "robust_sha256": h["sha256"]})
        spec = {**body, "accurate_sha256": g["sha256"], "robust_sha256": h["sha256"]}
        write_json(out, spec)
        written.append(spec)
    return written
