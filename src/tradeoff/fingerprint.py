"""The fingerprint of a run: a short stable hash of its JSON-able description (inputs' checksums and
parameters), the key under which checkpoints and resumable records accept earlier progress. No torch."""

from __future__ import annotations

import hashlib
import json
from typing import Any

__all__ = ["fingerprint"]


def fingerprint(obj: Any) -> str:
    """Stable hash of a JSON-able description (config of a run), used to refuse a foreign checkpoint.

    Guarantee: a pure function of the JSON serialisation of ``obj`` with sorted keys (so the order of a
    mapping's keys does not matter); 16 hexadecimal digits."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]
