"""Batched predictions of a classifier: the one low-level helper that training, evaluation and the stages
built on them share."""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["predict"]


def predict(model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, batch_size: int = 500,
            device: torch.device | str = "cpu") -> torch.Tensor:
    """argmax predictions of ``model`` on ``x`` in batches (CPU tensor of class indices)."""
    out = [model(x[i:i + batch_size].to(device)).argmax(1).cpu() for i in range(0, x.shape[0], batch_size)]
    return torch.cat(out) if out else torch.empty(0, dtype=torch.long)
