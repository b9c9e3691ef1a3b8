"""Figures, drawn from ``results/summary.csv`` and per-sample records only (never from model weights).

Each figure is a function registered under a name; ``tradeoff figures NAME --out F.png [inputs]`` draws it
to PNG and PDF.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

FIGURES: dict[str, Callable[..., Any]] = {}


def register(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        FIGURES[name] = fn
        return fn

    return deco


def load_all() -> dict[str, Callable[..., Any]]:
    """Every figure: imports each module of this package that registers one (found in the sources)."""
    from ..registry import modules_applying

    for module in modules_applying("register(", under="figures"):
        importlib.import_module(module)
    return FIGURES
