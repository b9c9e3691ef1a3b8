"""The one training loop: optimizer, schedule, per-epoch checkpoint and resume, NaN guard, progress bar.

Objectives are pluggable (:mod:`tradeoff.objectives`). Everything random in epoch ``e`` (shuffling,
random starts, noise) is drawn after seeding torch with ``(seed, e)``, and the data augmentation of
epoch ``e`` (:mod:`tradeoff.augment`) from its own generator seeded with ``(seed, e)`` too, so an
interrupted run resumed from its last checkpoint produces exactly the weights an uninterrupted run
produces (on the CPU).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from .augment import augmenter
from .fingerprint import fingerprint
from .io import ArtifactError, load_torch, save_torch
from .predict import predict
from .progress import Progress
from .seeding import seed_word

log = logging.getLogger("tradeoff")


class TrainingDiverged(RuntimeError):
    """The loss or the weights became non-finite."""


@dataclass
class TrainConfig:
    """Hyper-parameters of the loop (the objective's own live in its config section)."""

    epochs: int = 30
    batch_size: int = 128
    optimizer: str = "adam"  # adam | sgd
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "cosine"  # cosine | multistep | constant | cyclic
    milestones: list[float] = field(default_factory=lambda: [0.5, 0.75])  # fractions of the epochs
    gamma: float = 0.1
    grad_clip: float | None = None
    max_bad_fraction: float = 0.1  # NaN guard: fraction of skipped batches per epoch before giving up
    seed: int = 0
    augment: str = "none"  # none | crop_flip (tradeoff.augment; applied to each training batch's inputs)

    @classmethod
    def from_mapping(cls, params: Mapping[str, Any]) -> TrainConfig:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in params.items() if k in known})


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    raise ValueError(f"unknown optimizer '{cfg.optimizer}'")


def lr_factor(cfg: TrainConfig, step: int, total: int) -> float:
    """Learning-rate multiplier at optimizer step ``step`` of ``total``."""
    if cfg.schedule == "constant":
        return 1.0
    if cfg.schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * step / max(total, 1)))
    if cfg.schedule == "cyclic":  # Wong et al. 2020: linear from 0 to lr over the first 2/5, then back to 0
        done = (step + 1) / max(total, 1)
        return done / 0.4 if done < 0.4 else max(0.0, (1.0 - done) / 0.6)
    if cfg.schedule == "multistep":
        done = step / max(total, 1)
        return cfg.gamma ** sum(done >= m for m in cfg.milestones)
    raise ValueError(f"unknown schedule '{cfg.schedule}'")


def epoch_seed(seed: int, epoch: int) -> int:
    """Seed of epoch ``epoch``'s shuffling and initial draws (a 32-bit word of ``SeedSequence([seed, epoch])``)."""
    return seed_word(seed, epoch, bits=32)


def augment_seed(seed: int, epoch: int) -> int:
    """Seed of epoch ``epoch``'s augmentation generator: a stream apart from :func:`epoch_seed`'s."""
    return seed_word(seed, epoch, 1, bits=32)


def train(
    model: nn.Module,
    objective: Callable[[nn.Module, torch.Tensor, torch.Tensor], tuple[torch.Tensor, dict[str, float]]],
    x: torch.Tensor,
    y: torch.Tensor,
    cfg: TrainConfig,
    checkpoint: str | Path,
    run_id: str,
    device: torch.device,
    evaluate: Callable[[nn.Module], dict[str, float]] | None = None,
    progress: bool = True,
    stop_after_epoch: int | None = None,
) -> list[dict[str, float]]:
    """Train ``model`` in place and return the per-epoch history.

    After every epoch the model, optimizer, epoch and history are written atomically to ``checkpoint``.
    If ``checkpoint`` exists and carries the same ``run_id`` (a fingerprint of the run's config), training
    resumes after its epoch; a checkpoint of a different run is ignored with a log line, a corrupt one
    raises :class:`~tradeoff.io.ArtifactError` naming it. ``stop_after_epoch`` ends early (for tests of
    resumption). Batches whose loss is non-finite are skipped; if more than ``max_bad_fraction`` of an
    epoch's batches are, or the weights become non-finite, :class:`TrainingDiverged` is raised.
    ``cfg.augment`` names the augmentation of each training batch's inputs (after moving them to
    ``device``, before the objective sees them); an unknown name, or an image augmentation of inputs that
    are not images (N, C, H, W), raises ValueError before anything is trained.
    """
    augment = augmenter(cfg.augment)
    if cfg.augment != "none" and x.dim() != 4:
        raise ValueError(f"{run_id}: augment '{cfg.augment}' needs image inputs (N, C, H, W), but the "
                         f"training inputs have shape {tuple(x.shape)}; use augment 'none'")
    model.to(device)
    optimizer = make_optimizer(model, cfg)
    base_lrs = [g["lr"] for g in optimizer.param_groups]  # before a resumed state overwrites them
    history: list[dict[str, float]] = []
    start_epoch = 0
    ckpt_path = Path(checkpoint)
    if ckpt_path.exists():
        state = load_torch(ckpt_path)
        if not isinstance(state, dict) or "model" not in state:
            raise ArtifactError(f"{ckpt_path}: not a training checkpoint")
        if state.get("run_id") == run_id:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            history = json.loads(state["history"])
            start_epoch = int(state["epoch"]) + 1
            log.info("resuming %s from epoch %d (%s)", run_id, start_epoch, ckpt_path)
        else:
            log.info("ignoring checkpoint %s of another run (%s ≠ %s)", ckpt_path, state.get("run_id"), run_id)
    n = x.shape[0]
    steps_per_epoch = math.ceil(n / cfg.batch_size)
    total_steps = steps_per_epoch * cfg.epochs
    # Log lines with an ETA for the whole run (the rule's log), whatever ``progress`` says about the bar.
    logged = Progress(steps_per_epoch * max(cfg.epochs - start_epoch, 0), f"train {ckpt_path.stem}", unit="batches")
    for epoch in range(start_epoch, cfg.epochs):
        logged.set_postfix(f"(epoch {epoch + 1}/{cfg.epochs})")
        torch.manual_seed(epoch_seed(cfg.seed, epoch))
        order = torch.randperm(n)
        aug_gen = torch.Generator().manual_seed(augment_seed(cfg.seed, epoch))  # CPU: same draws on any device
        model.train()
        sums: dict[str, float] = {}
        bad = 0
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not progress,
                   leave=False, mininterval=2.0)
        for b in bar:
            idx = order[b * cfg.batch_size:(b + 1) * cfg.batch_size]
            xb, yb = x[idx].to(device), y[idx].to(device)
            xb = augment(xb, aug_gen)
            factor = lr_factor(cfg, epoch * steps_per_epoch + b, total_steps)
            for group, base in zip(optimizer.param_groups, base_lrs, strict=True):
                group["lr"] = base * factor
            if hasattr(objective, "set_progress"):  # an ε ramp (objectives.RampedObjective)
                objective.set_progress((epoch * steps_per_epoch + b) / total_steps)
            loss, stats = objective(model, xb, yb)
            logged.update(1)
            if not torch.isfinite(loss):
                bad += 1
                optimizer.zero_grad(set_to_none=True)
                continue
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            for k, v in stats.items():
                sums[k] = sums.get(k, 0.0) + v * len(idx)
        if bad > cfg.max_bad_fraction * steps_per_epoch:
            raise TrainingDiverged(
                f"{run_id}: non-finite loss in {bad}/{steps_per_epoch} batches of epoch {epoch}")
        if not all(torch.isfinite(p).all() for p in model.parameters()):
            raise TrainingDiverged(f"{run_id}: weights became non-finite in epoch {epoch}")
        record = {"epoch": epoch, "skipped_batches": bad, **{k: v / n for k, v in sums.items()}}
        if evaluate is not None:
            model.eval()
            record.update(evaluate(model))
        history.append(record)
        log.info("epoch %d: %s", epoch, ", ".join(f"{k}={v:.4g}" for k, v in record.items() if k != "epoch"))
        save_torch({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch,
                    "history": json.dumps(history), "run_id": run_id, "config": json.dumps(asdict(cfg))},
                   ckpt_path)
        if stop_after_epoch is not None and epoch >= stop_after_epoch:
            break
    logged.close()
    model.eval()
    return history


def train_classifier(data: str | Path, out: str | Path, *, name: str, arch: str, arch_options: Mapping[str, Any],
                     objective: str, objective_params: Mapping[str, Any], threat: Mapping[str, Any],
                     train_params: Mapping[str, Any], checkpoint: str | Path, seed: int, device: torch.device,
                     init: str | Path | None = None, progress: bool = True,
                     stop_after_epoch: int | None = None) -> dict[str, Any] | None:
    """The ``train`` stage: build ``arch`` for the dataset ``data``, optionally start from the weights of the
    classifier JSON ``init``, train it with ``objective`` at ``threat`` (``{norm, eps}``) by :func:`train`
    (resumable from ``checkpoint``; the calibration split's accuracy is logged per epoch), and write the
    classifier JSON ``out`` (kind ``base``) with its weights next to it (``.pt``).

    Guarantee: the initial weights and every epoch are seeded from ``seed``, so equal arguments give equal
    weights on the CPU whether or not the run was interrupted. Returns the JSON written, or None when
    ``stop_after_epoch`` ended the run before its last epoch (nothing is written then).
    """
    from . import data as data_mod
    from .classifiers import load_classifier, weights_path
    from .io import provenance, read_json, write_json
    from .models import build_model
    from .objectives import build_objective
    from .threat import Threat

    splits = data_mod.load(data)
    cfg = TrainConfig.from_mapping({**train_params, "seed": seed})
    torch.manual_seed(seed)  # the initial weights come from the config's seed too
    model = build_model(arch, splits.name, splits.num_classes, splits.input_shape, arch_options)
    if init:
        model.load_state_dict(load_classifier(init).state_dict())
        for p in model.parameters():
            p.requires_grad_(True)
        log.info("fine-tuning from %s", init)
    loss = build_objective(objective, objective_params, Threat(str(threat["norm"]), float(threat["eps"]),
                                                               splits.bounds))
    run_config = {
        "name": name, "arch": arch, "arch_options": arch_options, "objective": objective,
        "objective_params": objective_params, "threat": threat, "train": vars(cfg),
        "data_sha256": splits.meta["sha256"], "init": None if not init else read_json(init)["sha256"],
    }
    x_val, y_val = splits.x("calib"), splits.y("calib")

    def monitor(m: nn.Module) -> dict[str, float]:
        pred = predict(m, x_val, device=device)
        return {"calib_acc": float((pred == y_val).float().mean())}

    history = train(model, loss, splits.x("train"), splits.y("train"), cfg, checkpoint, fingerprint(run_config),
                    device, evaluate=monitor, progress=progress, stop_after_epoch=stop_after_epoch)
    if stop_after_epoch is not None and len(history) < cfg.epochs:
        log.info("stopped after epoch %d as asked; no final model written", stop_after_epoch)
        return None
    model.cpu()
    digest = save_torch(model.state_dict(), weights_path(out))
    spec = {
        "kind": "base", "name": name, "dataset": splits.name, "arch": arch, "arch_options": arch_options,
        "num_classes": splits.num_classes, "input_shape": list(splits.input_shape), "objective": objective,
        "sha256": digest, "history": history, **provenance(run_config, seed),
    }
    write_json(out, spec)
    return spec
