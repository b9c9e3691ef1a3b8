"""Configuration checks: JSON Schema validation with one clear line per error, plus semantic checks.

Snakemake's own ``validate`` reports a schema error as a multi-line dump; :func:`check_config` reports
the first error as ``config error at <key path>: <what is wrong>``, which is what a user needs to fix it.
Stages can register extra checks (e.g. a certification budget too small to certify anything) with
:func:`register_check`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

CHECKS: list[Callable[[Mapping[str, Any]], None]] = []
CHECK_MODULES: list[str] = ["tradeoff.certify.checks", "tradeoff.certify.prob_settings",
                            "tradeoff.zoo_checks"]
"""Modules whose import registers stage checks (imported by :func:`check_config`)."""


class ConfigError(ValueError):
    """The configuration is invalid; the message is one line naming the key."""


def register_check(fn: Callable[[Mapping[str, Any]], None]) -> Callable[[Mapping[str, Any]], None]:
    """Add a semantic check run after the schema (it raises :class:`ConfigError`)."""
    CHECKS.append(fn)
    return fn


def _path(error: Any) -> str:
    parts = [str(p) for p in error.absolute_path]
    return ".".join(parts) if parts else "<top level>"


def _describe(error: Any) -> str:
    if error.validator == "required":
        missing = error.message.split("'")[1] if "'" in error.message else error.message
        where = _path(error)
        key = missing if where == "<top level>" else f"{where}.{missing}"
        return f"config error at {key}: missing key (see config.yaml for its meaning and default)"
    if error.validator == "additionalProperties":
        return f"config error at {_path(error)}: {error.message} (misspelled or unknown key)"
    if error.validator == "enum":
        allowed = ", ".join(map(str, error.validator_value))
        return f"config error at {_path(error)}: {error.instance!r} is not one of: {allowed}"
    return f"config error at {_path(error)}: {error.message}"


def check_config(config: Mapping[str, Any], schema_path: str | Path) -> None:
    """Validate ``config`` against the schema and the registered checks; raise :class:`ConfigError`."""
    import jsonschema

    schema = yaml.safe_load(Path(schema_path).read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(dict(config)), key=lambda e: (len(list(e.absolute_path)), e.message))
    if errors:
        raise ConfigError(_describe(errors[0]))
    import importlib

    for module in CHECK_MODULES:
        importlib.import_module(module)
    for check in CHECKS:
        check(config)


@register_check
def _models_refer_to_known_models(config: Mapping[str, Any]) -> None:
    models = config.get("models", {})
    for name, entry in models.items():
        init = entry.get("init")
        if init is not None and init not in models:
            raise ConfigError(f"config error at models.{name}.init: '{init}' is not a model in models")
        if init == name:
            raise ConfigError(f"config error at models.{name}.init: a model cannot start from itself")
