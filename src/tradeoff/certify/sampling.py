"""Monte-Carlo core shared by every certificate: noise samplers, per-point generators, class counting.

Reproducibility contract
------------------------
All noise is drawn from a ``torch.Generator`` that is consumed strictly sequentially, one fixed-size
block of uniforms per noise sample.  Consequently the noise of sample ``j`` depends only on the
generator's initial state and on ``j`` -- not on ``batch_size`` or on how the ``n`` draws are split
into calls.  Together with :func:`point_generator` (one generator per test point, derived from
``(seed, index, stream)``), results for a test point do not depend on batch size, sharding or order.
This holds exactly for CPU generators (the default); for other devices it depends on that backend's
counter layout and is not guaranteed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from ..seeding import seed_word

__all__ = [
    "NoiseSampler",
    "GaussianNoise",
    "UniformLinfBall",
    "UniformL2Ball",
    "ball_sampler",
    "point_generator",
    "iter_predictions",
    "count_classes",
]

Model = Callable[[torch.Tensor], torch.Tensor]

# float64 uniforms from torch.rand lie on the grid k * 2**-53, k in [0, 2**53); lifting 0 to this
# value keeps the inverse normal CDF finite (the resulting normals are truncated at about +-8.2).
_U_MIN = 2.0**-54


@runtime_checkable
class NoiseSampler(Protocol):
    """Draws ``n`` i.i.d. noise vectors of shape ``shape``: returns a tensor ``[n, *shape]``."""

    def sample(self, shape: Sequence[int], n: int, generator: torch.Generator) -> torch.Tensor: ...


def _uniforms(rows: int, cols: int, generator: torch.Generator) -> torch.Tensor:
    """``rows x cols`` float64 U[0, 1) draws, consumed row-major from ``generator``.

    torch.rand on CPU consumes the generator one value per element, so consecutive calls concatenate
    to the same stream as a single call (this is what makes chunked sampling batch-size invariant).
    """
    return torch.rand((rows, cols), generator=generator, dtype=torch.float64, device=generator.device)


def _standard_normal(u: torch.Tensor) -> torch.Tensor:
    """Exact N(0, 1) draws from U[0, 1) draws by inverse-CDF transform (torch.special.ndtri).

    torch.randn is not used because its vectorised CPU kernel consumes the stream in blocks of 16
    values, so its output would depend on how the draws are chunked.
    """
    return torch.special.ndtri(u.clamp(min=_U_MIN))


def _numel(shape: Sequence[int]) -> int:
    return int(math.prod(int(s) for s in shape))


class GaussianNoise:
    """Isotropic Gaussian noise N(0, sigma^2 I)."""

    def __init__(self, sigma: float) -> None:
        if not sigma > 0:
            raise ValueError(f"sigma must be positive, got {sigma}")
        self.sigma = float(sigma)

    def sample(self, shape: Sequence[int], n: int, generator: torch.Generator) -> torch.Tensor:
        d = _numel(shape)
        z = _standard_normal(_uniforms(n, d, generator))
        return (self.sigma * z).to(torch.float32).reshape(n, *shape)

    def __repr__(self) -> str:
        return f"GaussianNoise(sigma={self.sigma})"


class UniformLinfBall:
    """Uniform noise on the l_inf ball of radius eps: each coordinate i.i.d. U(-eps, eps)."""

    def __init__(self, eps: float) -> None:
        if not eps > 0:
            raise ValueError(f"eps must be positive, got {eps}")
        self.eps = float(eps)

    def sample(self, shape: Sequence[int], n: int, generator: torch.Generator) -> torch.Tensor:
        d = _numel(shape)
        u = _uniforms(n, d, generator)
        return ((2.0 * u - 1.0) * self.eps).to(torch.float32).reshape(n, *shape)

    def __repr__(self) -> str:
        return f"UniformLinfBall(eps={self.eps})"


class UniformL2Ball:
    """Uniform noise on the l2 ball of radius eps in D = prod(shape) dimensions.

    A sample is ``eps * U**(1/D) * z / ||z||`` with z ~ N(0, I_D) (uniform direction) and
    U ~ U(0, 1) independent, which is the uniform distribution on the ball.
    """

    def __init__(self, eps: float) -> None:
        if not eps > 0:
            raise ValueError(f"eps must be positive, got {eps}")
        self.eps = float(eps)

    def sample(self, shape: Sequence[int], n: int, generator: torch.Generator) -> torch.Tensor:
        d = _numel(shape)
        u = _uniforms(n, d + 1, generator)  # per sample: d values for the direction, 1 for the radius
        z = _standard_normal(u[:, :d])
        direction = z / z.norm(dim=1, keepdim=True).clamp(min=1e-300)
        radius = self.eps * u[:, d:].pow(1.0 / d)
        return (direction * radius).to(torch.float32).reshape(n, *shape)

    def __repr__(self) -> str:
        return f"UniformL2Ball(eps={self.eps})"


def ball_sampler(eps: float, norm: str | float) -> UniformLinfBall | UniformL2Ball:
    """The uniform sampler of the ``norm`` ball of radius ``eps``.

    ``norm`` is case-insensitive: 'linf' / 'Linf' / 'inf' (the pipeline's threat spelling is 'Linf') or
    'l2' / 'L2' / 2.
    """
    key = str(norm).lower()
    if key in ("linf", "inf", "l_inf"):
        return UniformLinfBall(eps)
    if key in ("l2", "2", "2.0"):
        return UniformL2Ball(eps)
    raise ValueError(f"unsupported norm {norm!r}; use 'linf' or 'l2'")


def point_generator(
    seed: int, index: int, stream: int = 0, device: str | torch.device = "cpu"
) -> torch.Generator:
    """A generator seeded deterministically from ``(seed, index, stream)``.

    ``index`` identifies the test point and ``stream`` separates independent uses for the same point
    (e.g. selection vs. estimation samples, or different certificates), so a point's randomness does
    not depend on batch size, sharding or evaluation order.  The triple is mixed with numpy's
    ``SeedSequence``, so nearby triples give unrelated streams.
    """
    if min(seed, index, stream) < 0:
        raise ValueError("seed, index and stream must be non-negative integers")
    gen = torch.Generator(device=device)
    gen.manual_seed(seed_word(seed, index, stream))
    return gen


def iter_predictions(
    model: Model,
    x: torch.Tensor,
    n: int,
    noise: NoiseSampler,
    batch_size: int,
    generator: torch.Generator,
    clamp: bool = False,
    on_batch: Callable[[int], None] | None = None,
) -> Iterator[torch.Tensor]:
    """Yield the argmax predictions (int64, on ``x.device``) of ``model`` on ``n`` noisy copies of ``x``.

    Copies ``x + delta`` are formed in chunks of at most ``batch_size``; at most ``batch_size`` noisy
    copies exist at any time.  Chunk ``k`` uses the next draws of ``generator``, so the sequence of
    predictions does not depend on ``batch_size``.  With ``clamp=True`` every copy is clipped to
    [0, 1]; note that clipping changes the distribution of the perturbed input (mass accumulates on the
    faces of the unit cube), so e.g. the Gaussian smoothing guarantees of Cohen et al. assume
    ``clamp=False``.  ``on_batch(m)``, if given, is called after each chunk with its size ``m`` (progress
    reporting of long sampling passes, :mod:`tradeoff.progress`); it does not touch the generator.
    """
    if n < 0:
        raise ValueError(f"n must be non-negative, got {n}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    shape = tuple(x.shape)
    remaining = int(n)
    with torch.no_grad():
        while remaining > 0:
            m = min(batch_size, remaining)
            remaining -= m
            delta = noise.sample(shape, m, generator).to(device=x.device, dtype=x.dtype)
            batch = x.unsqueeze(0) + delta
            del delta
            if clamp:
                batch.clamp_(0.0, 1.0)
            logits = model(batch)
            if on_batch is not None:
                on_batch(m)
            yield logits.argmax(dim=1)


def count_classes(
    model: Model,
    x: torch.Tensor,
    n: int,
    noise: NoiseSampler,
    num_classes: int,
    batch_size: int,
    generator: torch.Generator,
    clamp: bool = False,
    on_batch: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Counts (int64 array of length ``num_classes``) of the model's argmax class on ``n`` noisy copies.

    ``x`` is a single input ``[*shape]``; the noise ``delta ~ noise`` is drawn from ``generator`` and
    the result is identical for every ``batch_size`` (see :func:`iter_predictions`, which also
    documents ``clamp`` and ``on_batch``).
    """
    counts = np.zeros(num_classes, dtype=np.int64)
    for preds in iter_predictions(model, x, n, noise, batch_size, generator, clamp=clamp, on_batch=on_batch):
        binned = torch.bincount(preds.cpu(), minlength=num_classes)
        if binned.numel() > num_classes:
            raise ValueError(f"model predicted class {int(preds.max())} >= num_classes={num_classes}")
        counts += binned.numpy().astype(np.int64)
    return counts
