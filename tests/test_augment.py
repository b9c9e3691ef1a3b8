"""Training augmentation (tradeoff.augment): windows of the zero-padded image, uniform offsets, fair flips."""

import pytest
import torch
import torch.nn.functional as F
from scipy import stats

from tradeoff.augment import augmenter, random_crop_flip


def candidates(img: torch.Tensor, padding: int) -> torch.Tensor:
    """All outputs crop_flip may give for one image (C, H, W): index flip·K² + dy·K + dx, K = 2·padding + 1."""
    _, h, w = img.shape
    k = 2 * padding + 1
    padded = F.pad(img, (padding, padding, padding, padding))
    windows = [padded[:, dy:dy + h, dx:dx + w] for dy in range(k) for dx in range(k)]
    return torch.stack([*windows, *[win.flip(-1) for win in windows]])


def cells(out: torch.Tensor, img: torch.Tensor, padding: int) -> torch.Tensor:
    """For each output (N, C, H, W) of the one image ``img``, the index of the candidate it equals."""
    cand = candidates(img, padding)
    match = (out[:, None] == cand[None]).flatten(2).all(2)  # (N, 2K²)
    assert bool((match.sum(1) == 1).all()), "each output must equal exactly one window"
    return match.int().argmax(1)


def test_every_output_is_a_window_of_its_own_padded_image():
    g = torch.Generator().manual_seed(1)
    for shape, padding in [((40, 3, 5, 6), 4), ((25, 1, 4, 4), 2), ((8, 2, 3, 3), 0)]:
        x = torch.rand(shape, generator=g)
        out = random_crop_flip(x, padding=padding, generator=g)
        assert out.shape == x.shape and out.dtype == x.dtype
        for i in range(x.shape[0]):
            cand = candidates(x[i], padding)
            assert (cand == out[i]).flatten(1).all(1).any(), f"image {i} (padding {padding})"


def pattern(h: int = 6, w: int = 6) -> torch.Tensor:
    """One image whose pixels are all distinct and non-zero: each window (and its flip) is identifiable."""
    return (torch.arange(h * w, dtype=torch.float32) + 1).reshape(1, h, w) / (h * w)


def test_offsets_are_uniform_and_flips_fair():
    img, padding = pattern(), 4
    n = 81 * 60
    out = random_crop_flip(img.expand(n, -1, -1, -1), padding=padding, generator=torch.Generator().manual_seed(7))
    idx = cells(out, img, padding)
    offsets, flips = idx % 81, idx // 81
    counts = torch.bincount(offsets, minlength=81).numpy()
    assert stats.chisquare(counts).pvalue > 0.001, counts
    assert stats.binomtest(int(flips.sum()), n, 0.5).pvalue > 0.001
    # the flip is drawn independently of the offset: the 162 (offset, flip) cells are uniform too
    assert stats.chisquare(torch.bincount(idx, minlength=162).numpy()).pvalue > 0.001


def test_images_of_a_batch_get_independent_draws():
    out = random_crop_flip(pattern().expand(200, -1, -1, -1), generator=torch.Generator().manual_seed(3))
    assert len(set(cells(out, pattern(), 4).tolist())) > 100  # one shared draw would give a single cell


def test_global_rng_without_generator():
    torch.manual_seed(0)
    a = random_crop_flip(pattern().expand(50, -1, -1, -1))
    torch.manual_seed(0)
    assert torch.equal(a, random_crop_flip(pattern().expand(50, -1, -1, -1)))


def test_none_is_the_identity_and_names_are_checked():
    x = torch.rand(4, 3, 8, 8)
    assert augmenter("none")(x) is x
    points = torch.rand(10, 2)
    assert augmenter("none")(points, torch.Generator()) is points  # any shape
    out = augmenter("crop_flip")(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    with pytest.raises(ValueError, match="none, crop_flip"):
        augmenter("crop")


@pytest.mark.parametrize("shape", [(10, 2), (3, 8, 8), (2, 1, 1, 8, 8)])
def test_crop_flip_needs_image_batches(shape):
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        random_crop_flip(torch.rand(shape))
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        augmenter("crop_flip")(torch.rand(shape))


def test_deterministic_given_a_seeded_generator():
    x = torch.rand(64, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    a = random_crop_flip(x, generator=torch.Generator().manual_seed(42))
    b = random_crop_flip(x, generator=torch.Generator().manual_seed(42))
    c = random_crop_flip(x, generator=torch.Generator().manual_seed(43))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_same_draws_on_the_gpu():
    x = torch.rand(32, 3, 8, 8)
    cpu = random_crop_flip(x, generator=torch.Generator().manual_seed(5))
    gpu = random_crop_flip(x.cuda(), generator=torch.Generator().manual_seed(5))
    assert gpu.device.type == "cuda"
    assert torch.equal(cpu, gpu.cpu())
