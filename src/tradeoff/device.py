"""Device selection, thread control, seeding and the environment check."""

from __future__ import annotations

import logging
import os
import random

import numpy as np
import torch

log = logging.getLogger("tradeoff")


class DeviceError(RuntimeError):
    """A job asked for a GPU that it cannot see."""


def select_device(requested: str = "auto", gpus_requested: int = 0) -> torch.device:
    """Pick the device for a job and log it.

    ``requested`` is ``auto`` (CUDA when available, else CPU), ``cpu`` or ``cuda``. If the job was
    scheduled with ``gpus_requested > 0`` but no CUDA device is visible, the choice depends on
    ``TRADEOFF_ALLOW_CPU_FALLBACK``: when it is set to ``1`` (test clusters with fake GPUs) the job logs a
    warning and runs on the CPU; otherwise it raises :class:`DeviceError`, because silently running a
    GPU-sized job on a CPU would take days.
    """
    has_cuda = torch.cuda.is_available()
    if requested == "cuda" and not has_cuda:
        raise DeviceError("device 'cuda' requested in the config but torch sees no CUDA device")
    if gpus_requested > 0 and not has_cuda:
        message = (
            f"this job requested {gpus_requested} GPU(s) but torch {torch.__version__} sees no CUDA device "
            f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', '<unset>')})"
        )
        if os.environ.get("TRADEOFF_ALLOW_CPU_FALLBACK") == "1":
            log.warning("%s; falling back to the CPU (TRADEOFF_ALLOW_CPU_FALLBACK=1)", message)
        else:
            raise DeviceError(message + "; set TRADEOFF_ALLOW_CPU_FALLBACK=1 to run on the CPU anyway")
    device = torch.device("cuda" if (requested in ("auto", "cuda") and has_cuda) else "cpu")
    log.info("device: %s (torch %s, CUDA available: %s)", device, torch.__version__, has_cuda)
    return device


def environment_report() -> dict[str, object]:
    """Torch/CUDA versions and visible devices, for the logs and metadata."""
    report: dict[str, object] = {
        "torch": torch.__version__,
        "cuda_available": torch.cuda.is_available(),
        "cuda_version": torch.version.cuda,
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "threads": torch.get_num_threads(),
    }
    if torch.cuda.is_available():
        report["devices"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return report


def write_environment_report(out: str | os.PathLike, device: torch.device, gpus_requested: int) -> dict[str, object]:
    """Log and write to ``out`` (JSON) the :func:`environment_report` with the job's ``device``, the GPUs it
    requested, its SLURM job id (None outside SLURM) and host name; returns the report."""
    from .io import write_json

    report = {**environment_report(), "device": str(device), "gpus_requested": gpus_requested,
              "slurm_job_id": os.environ.get("SLURM_JOB_ID"), "hostname": os.uname().nodename}
    log.info("environment: %s", report)
    write_json(out, report)
    return report


def set_threads(threads: int) -> None:
    """Limit torch's intra-op threads to what the job was given."""
    torch.set_num_threads(max(1, int(threads)))


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch, and ask torch for deterministic algorithms where it has them."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
