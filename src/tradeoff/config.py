"""Configuration checks: JSON Schema validation with one clear line per error, plus semantic checks.

Snakemake's own ``validate`` reports a schema error as a multi-line dump; :func:`check_config` reports
the first error as ``config error at <key path>: <what is wrong>``, which is what a user needs to fix it.
Stages can register extra checks (e.g. a certification budget too small to certify anything) with
:func:`register_check`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from .errors import TradeoffError

CHECKS: list[Callable[[Mapping[str, Any]], None]] = []
ConfigError = TradeoffError
"""The configuration is invalid; the message is one line naming the key (the one user-facing error type,
:class:`tradeoff.errors.TradeoffError`, under the name the config checks raise)."""


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

    from .registry import modules_applying

    for module in modules_applying("register_check"):  # every module that defines a check
        importlib.import_module(module)
    for check in CHECKS:
        check(config)


@register_check
def _preset_base_was_given(config: Mapping[str, Any]) -> None:
    """A preset that builds on a layer (``base: cifar``) needs that layer's file before it."""
    base = config.get("base")
    if base is not None and config.get("layer") != base:
        raise ConfigError(f"config error at base: this preset builds on presets/{base}.yaml, which was not given "
                          f"before it (--configfile presets/{base}.yaml <preset>)")


@register_check
def _models_refer_to_known_models(config: Mapping[str, Any]) -> None:
    models = config.get("models", {})
    for name, entry in models.items():
        init = entry.get("init")
        if init is not None and init not in models:
            raise ConfigError(f"config error at models.{name}.init: '{init}' is not a model in models")
        if init == name:
            raise ConfigError(f"config error at models.{name}.init: a model cannot start from itself")


def threat_id(threat: Mapping[str, Any]) -> str:
    """The path segment and id of a threat model: ``{"norm": "Linf", "eps": 0.3}`` → ``"linf-0.3"``."""
    return f"{str(threat['norm']).lower()}-{float(threat['eps']):g}"


def seed_dir(seed: int) -> str:
    """The path segment of training seed ``seed``, appended to ``results/<dataset>``: ``""`` for seed 0, so that a
    one-seed run keeps its paths, ``"/seed-<seed>"`` otherwise (``results/digits/seed-1/linf-0.3/...``)."""
    return "" if int(seed) == 0 else f"/seed-{int(seed)}"


def seed_of_dir(segment: str) -> int:
    """The training seed of a path segment of :func:`seed_dir` (its inverse)."""
    if segment == "":
        return 0
    if not segment.startswith("/seed-") or not segment[len("/seed-"):].isdigit():
        raise ValueError(f"not a seed path segment: {segment!r}")
    return int(segment[len("/seed-"):])


def job_seed(master: int, seed: int) -> int:
    """The seed of every job of training seed ``seed``: ``master + seed`` (seed 0 runs with the master seed)."""
    return int(master) + int(seed)


STAGE_THREAT_KEYS = ("mixing.threats", "era.threats", "probabilistic.threats", "certify.threats")
"""Config keys that name the threats at which a stage runs (null = every entry of ``threats``)."""


def _stage_threats(config: Mapping[str, Any], key: str) -> list[Mapping[str, Any]] | None:
    """The list at ``key`` (a dotted path ending in ``threats``), or None when it is null or absent."""
    node: Any = config
    for part in key.split(".")[:-1]:
        node = node.get(part, {}) if isinstance(node, Mapping) else {}
    return node.get("threats") if isinstance(node, Mapping) else None


def select_threat_ids(threats: Sequence[Mapping[str, Any]], chosen: Sequence[Mapping[str, Any]] | None) -> list[str]:
    """The ids of ``chosen`` in the order of ``threats`` (every entry of ``threats`` when ``chosen`` is None)."""
    every = [threat_id(t) for t in threats]
    if chosen is None:
        return every
    wanted = {threat_id(t) for t in chosen}
    return [t for t in every if t in wanted]


def stage_threat_ids(config: Mapping[str, Any], key: str) -> list[str]:
    """The threat ids at which the stage ``key`` (e.g. ``"era.threats"`` or ``"models.variance.threats"``)
    runs, in the order of ``threats``; every entry of ``threats`` when the key is null or absent."""
    return select_threat_ids(config["threats"], _stage_threats(config, key))


@register_check
def _threats_are_distinct_and_stages_use_them(config: Mapping[str, Any]) -> None:
    seen: set[str] = set()
    for i, threat in enumerate(config["threats"]):
        tid = threat_id(threat)
        if tid in seen:
            raise ConfigError(f"config error at threats.{i}: duplicate threat {threat['norm']} ε={threat['eps']:g}")
        seen.add(tid)
    keys = [*STAGE_THREAT_KEYS, *(f"models.{name}.threats" for name in config.get("models", {}))]
    for key in keys:
        chosen = _stage_threats(config, key)
        for j, threat in enumerate(chosen or []):
            if threat_id(threat) not in seen:
                raise ConfigError(f"config error at {key}.{j}: {threat['norm']} ε={threat['eps']:g} is not an entry "
                                  f"of threats ({', '.join(sorted(seen))})")
        if chosen is not None and len({threat_id(t) for t in chosen}) < len(chosen):
            raise ConfigError(f"config error at {key}: a threat is listed twice")


THREAT_FREE_OBJECTIVES = frozenset({"standard", "gauss_aug"})
"""Objectives whose training ignores the threat: their models are trained once and shared by every threat."""


def _model_threat_ids(config: Mapping[str, Any], name: str) -> list[str]:
    return select_threat_ids(config["threats"], config["models"][name].get("threats"))


@register_check
def _stages_refer_to_known_models(config: Mapping[str, Any]) -> None:
    """Every model a stage names exists, is trained at the threats the stage runs at, and pairs make sense."""
    models = config["models"]
    zoo = dict((config.get("zoo") or {}).get("models") or {})
    shared = {m for m, e in models.items() if e["objective"] in THREAT_FREE_OBJECTIVES} | set(zoo)

    def at_threats(key: str, name: str, stage_key: str) -> None:
        if name in zoo:
            return
        if name not in models:
            raise ConfigError(f"config error at {key}: '{name}' is not a model in models")
        missing = set(stage_threat_ids(config, stage_key)) - set(_model_threat_ids(config, name))
        if missing:
            raise ConfigError(f"config error at {key}: '{name}' is not trained at {', '.join(sorted(missing))} "
                              f"(models.{name}.threats)")

    for zid in zoo:
        if zid in models:
            raise ConfigError(f"config error at zoo.models.{zid}: the id is already a model in models")
    for name, entry in models.items():
        init = entry.get("init")
        if entry["objective"] in THREAT_FREE_OBJECTIVES and init is not None and init not in shared:
            raise ConfigError(f"config error at models.{name}.init: a threat-free model ({entry['objective']}) "
                              f"cannot start from the threat-dependent model '{init}'")
        if init is not None and init in models and \
                not set(_model_threat_ids(config, name)) <= set(_model_threat_ids(config, init)):
            raise ConfigError(f"config error at models.{name}.threats: '{init}' (its init) is not trained at "
                              "all of them")
    mixing = config["mixing"]
    for key in ("accurate", "robust"):
        at_threats(f"mixing.{key}", mixing[key], "mixing.threats")
    if mixing["accurate"] == mixing["robust"]:
        raise ConfigError("config error at mixing.robust: the robust model must differ from mixing.accurate")
    if not mixing["network"]["alpha_min"] < mixing["network"]["alpha_max"]:
        raise ConfigError("config error at mixing.network.alpha_min: must be smaller than alpha_max")
    if not mixing["fit"]["attack"]["eps_lo"] <= mixing["fit"]["attack"]["eps_hi"]:
        raise ConfigError("config error at mixing.fit.attack.eps_lo: must not exceed eps_hi")
    era = config["era"]
    for i, name in enumerate(era["models"]):
        at_threats(f"era.models.{i}", name, "era.threats")
    composite = era["composite"]
    at_threats("era.composite.robust", composite["robust"], "era.threats")
    at_threats("era.composite.standard", composite["standard"], "era.threats")
    for i, name in enumerate(composite["compare"]):
        at_threats(f"era.composite.compare.{i}", name, "era.threats")
    if composite["standard"] in (composite["robust"], *composite["compare"]):
        raise ConfigError("config error at era.composite.standard: must differ from every robust branch")
    robustness = era["robustness"]
    for i, attack in enumerate(robustness["combine"]):
        if attack not in config["attacks"]["run"]:
            raise ConfigError(f"config error at era.robustness.combine.{i}: '{attack}' is not run (attacks.run)")
    if not robustness["attack_correct"] and not robustness["combine"]:
        raise ConfigError("config error at era.robustness.attack_correct: false needs the label attacks whose "
                          "records decide the correctly classified points (era.robustness.combine)")
    for name in ("standard", "trades", "era"):
        if name not in models:
            raise ConfigError(f"config error at models: the gauss3 picture (era.gauss3) needs a model '{name}'")
    mix_standard = config["certify"]["mix_standard"]
    if mix_standard not in shared:
        raise ConfigError(f"config error at certify.mix_standard: '{mix_standard}' must be a threat-free model "
                          f"({', '.join(sorted(shared))}): the ℓ2 certificates do not depend on the threat")
    composites = {"mixnet", "era-composite", *(f"era-composite-{b}" for b in composite["compare"])}
    for i, name in enumerate(config["probabilistic"]["classifiers"]):
        if name in composites or name.startswith(("mix-prob-", "mix-logit-")):
            continue
        at_threats(f"probabilistic.classifiers.{i}", name, "probabilistic.threats")
