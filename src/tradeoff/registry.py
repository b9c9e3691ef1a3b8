"""Registries derived from the code: the modules that register something (a config check, a classifier kind,
a figure) are found by reading the package's sources for the decorator, not listed by hand, so that a new
entry is registered where it is defined. Reading sources imports nothing (no torch)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
"""The ``tradeoff`` package's folder."""


@cache
def modules_applying(decorator: str, under: str = "") -> tuple[str, ...]:
    """The modules of the package (below the subpackage ``under``, e.g. ``"figures"``) with a line that
    starts with ``@<decorator>`` (e.g. ``"register_check"``), by dotted name, sorted."""
    root = PACKAGE / under if under else PACKAGE
    found = []
    for path in sorted(root.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        if any(line.startswith(f"@{decorator}") for line in text.splitlines()):
            parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
            found.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return tuple(found)
