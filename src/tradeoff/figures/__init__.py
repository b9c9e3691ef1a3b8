"""Figures, drawn from ``results/summary.csv`` and per-sample records only (never from model weights).

Each figure is a function registered under a name; ``tradeoff figures NAME --out F.png [inputs]`` draws it
to PNG and PDF.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

FIGURES: dict[str, Callable[..., Any]] = {}
MODULES = [
    "tradeoff.figures.base",
    "tradeoff.figures.unified",
    "tradeoff.figures.certify",
    "tradeoff.figures.era",
    "tradeoff.figures.mixing",
    "tradeoff.figures.probabilistic",
    "tradeoff.figures.tsipras",
    "tradeoff.figures.threats",
]


def register(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        FIGURES[name] = fn
        return fn

    return deco


def load_all() -> dict[str, Callable[..., Any]]:
    for module in MODULES:
        importlib.import_module(module)
    return FIGURES
