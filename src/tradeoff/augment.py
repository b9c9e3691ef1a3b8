"""Training-time data augmentation of image batches.

The CIFAR presets reproduce papers (PGD-AT, TRADES, …) whose CIFAR training always uses the standard
augmentation: a random crop of the image zero-padded by 4 pixels on each side, then a horizontal flip
with probability 1/2. :func:`random_crop_flip` does that for a whole batch at once, with an independent
draw per image, on the batch's device.
"""

# Why hand-written (checked against torchvision 0.29's transforms/v2 source): a batch tensor (N, C, H, W)
# is one image with a leading batch dimension there, and the random parameters are drawn once per call:
# RandomCrop.make_params draws a single (top, left) with torch.randint, and RandomHorizontalFlip (a
# _RandomApplyTransform) a single torch.rand(1) in forward. So every image of a batch would get the same
# crop offset and the same flip, and per-image draws would need a Python loop of one call per image;
# neither takes a torch.Generator either (they use the global RNG). random_crop_flip pads the batch once
# and gathers each image's window with per-image index grids: vectorized, on the batch's device.

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

AUGMENTATIONS = ("none", "crop_flip")

Augmenter = Callable[[torch.Tensor, torch.Generator | None], torch.Tensor]


def random_crop_flip(x: torch.Tensor, padding: int = 4, generator: torch.Generator | None = None) -> torch.Tensor:
    """Random crop of the zero-padded images and random horizontal flip, independently per image.

    ``x`` is a batch (N, C, H, W) (pixels in [0, 1]; values are only moved, never changed). Each image
    is zero-padded by ``padding`` pixels on all four sides; its output is the H×W window of the padded
    image at offset (dy, dx), with dy and dx drawn independently and uniformly from the
    ``2·padding + 1`` offsets {0, …, 2·padding} of each axis, then mirrored left–right with probability
    1/2. Every draw is independent across images, axes and the flip. So every output image equals some
    window of its own zero-padded input, possibly flipped; offset (padding, padding) without a flip is the
    image itself. The result has the input's shape, dtype and device.

    The random numbers come from ``generator`` (drawn on its device, then moved to ``x``'s), or from
    torch's global generator of ``x``'s device when it is None; with a seeded generator the output is
    deterministic and independent of the device ``x`` lives on.
    """
    if x.dim() != 4:
        raise ValueError(f"crop_flip augments images: expected a batch of shape (N, C, H, W), "
                         f"got a tensor of shape {tuple(x.shape)}")
    if padding < 0:
        raise ValueError(f"padding must be ≥ 0, got {padding}")
    n, c, h, w = x.shape
    draw_device = generator.device if generator is not None else x.device
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=draw_device).to(x.device)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=draw_device).to(x.device)
    flip = torch.randint(0, 2, (n,), generator=generator, device=draw_device).to(x.device, torch.bool)
    padded = F.pad(x, (padding, padding, padding, padding))  # zeros; (N, C, H + 2p, W + 2p)
    rows = dy[:, None] + torch.arange(h, device=x.device)  # (N, H): rows of each image's window
    cols = dx[:, None] + torch.arange(w, device=x.device)  # (N, W)
    cols = torch.where(flip[:, None], cols.flip(1), cols)  # a flip reads the window's columns backwards
    out = padded.gather(2, rows[:, None, :, None].expand(n, c, h, w + 2 * padding))
    return out.gather(3, cols[:, None, None, :].expand(n, c, h, w))


def _identity(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    return x


def _crop_flip(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    return random_crop_flip(x, padding=4, generator=generator)


def augmenter(name: str) -> Augmenter:
    """The augmentation called ``name`` as a function ``(batch, generator=None) -> batch``.

    ``"none"``: the batch itself (any shape). ``"crop_flip"``: :func:`random_crop_flip` with padding 4
    (32×32 crops of the 40×40 padded CIFAR images). Any other name raises ValueError.
    """
    if name == "none":
        return _identity
    if name == "crop_flip":
        return _crop_flip
    raise ValueError(f"unknown augmentation '{name}' (allowed: {', '.join(AUGMENTATIONS)})")
