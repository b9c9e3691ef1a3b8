"""The values of this run that were chosen by looking at data, read from small JSON records (``docs/choices``).

Each ``<name>.json`` holds one choice: ``setting`` (the config key), ``value`` (what the run uses), ``chosen_by``
(what chose it), ``split`` (the data it looked at), ``alternative`` (the default that was not taken) and
``alternative_gives`` (what that default gives, with the command or record it comes from).  Guarantee: a
missing folder is no choices; a malformed record raises ``ValueError`` naming the file and the key.
"""

from __future__ import annotations

import json
from pathlib import Path

FIELDS = ("setting", "value", "chosen_by", "split", "alternative", "alternative_gives")


def read_choices(folder: str | Path) -> list[dict[str, str]]:
    """The choice records of ``folder``, sorted by file name."""
    out = []
    for path in sorted(Path(folder).glob("*.json")) if str(folder) else []:
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not valid JSON ({exc})") from None
        if not isinstance(record, dict):
            raise ValueError(f"{path}: expected an object with keys {', '.join(FIELDS)}")
        for key in FIELDS:
            if not isinstance(record.get(key), str) or not record[key].strip():
                raise ValueError(f"{path}: key {key!r} is missing or not a non-empty string")
        out.append({k: record[k] for k in FIELDS})
    return out


def render_choices(choices: list[dict[str, str]]) -> str:
    """The "How this run was configured" section (empty without choices)."""
    if not choices:
        return ""
    cell = lambda s: s.replace("|", "\\|").replace("\n", " ")  # noqa: E731
    lines = ["### How this run was configured", "",
             "Values chosen by looking at data (`docs/choices/*.json`): what chose them, on which split, and what the "
             "default alternative gives. A choice made on test points makes the rows it feeds optimistic.", "",
             "| setting | value | chosen by | split | default alternative | the alternative gives |",
             "|---|---|---|---|---|---|"]
    lines += ["| " + " | ".join(cell(c[k]) for k in FIELDS) + " |" for c in choices]
    return "\n".join(lines)
