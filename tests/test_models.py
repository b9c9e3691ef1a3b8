"""Architectures: shapes, feature maps, normalization inside, the CIFAR presets' real code paths."""

import pytest
import torch

from tradeoff.models import ARCHITECTURES, build_model

CASES = {
    "small_cnn": ("digits", 10, (1, 8, 8), {}),
    "stride_cnn": ("mnist", 10, (1, 28, 28), {}),
    "mlp": ("gauss3", 3, (2,), {}),
    "linear": ("tsipras", 2, (11,), {}),
    "resnet18": ("cifar10", 10, (3, 32, 32), {}),
    "wrn34_10": ("cifar100", 100, (3, 32, 32), {"depth": 10, "widen": 2}),
}


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_logits_and_features(arch):
    dataset, classes, shape, opts = CASES[arch]
    torch.manual_seed(0)
    model = build_model(arch, dataset, classes, shape, opts).eval()
    x = torch.rand(3, *shape)
    logits, feats = model.forward_features(x)
    assert logits.shape == (3, classes)
    assert torch.allclose(model(x), logits)
    assert len(feats) == 2 and all(f.shape[0] == 3 for f in feats)
    assert [f.shape[1] for f in feats] == list(model.feature_channels)


def test_small_cnn_on_mnist_shape():
    model = build_model("small_cnn", "mnist", 10, (1, 28, 28))
    assert model(torch.rand(2, 1, 28, 28)).shape == (2, 10)


def test_stride_cnn_is_wong_et_al_mnist_network():
    """16/32 channels of 4×4 stride-2 convolutions and a 100-unit layer: 166,406 parameters at width 16."""
    model = build_model("stride_cnn", "mnist", 10, (1, 28, 28))
    assert sum(p.numel() for p in model.parameters()) == 16 * 17 + 32 * (16 * 16 + 1) + 100 * (32 * 49 + 1) + 1010
    _, (f1, f2) = model.forward_features(torch.rand(2, 1, 28, 28))
    assert f1.shape == (2, 16, 14, 14) and f2.shape == (2, 32, 7, 7)


def test_normalization_happens_inside():
    model = build_model("small_cnn", "digits", 10, (1, 8, 8)).eval()
    x = torch.rand(4, 1, 8, 8)
    z = (x - model.mean) / model.std
    f1 = model.block1(z)
    assert torch.allclose(model.forward_features(x)[1][0], f1)


def test_wrn34_10_is_the_real_size():
    model = build_model("wrn34_10", "cifar10", 10, (3, 32, 32))
    params = sum(p.numel() for p in model.parameters())
    assert 46_000_000 < params < 46_300_000  # WRN-34-10 has 46.2M parameters


def test_resnet18_size_and_stem():
    model = build_model("resnet18", "cifar10", 10, (3, 32, 32))
    assert 11_100_000 < sum(p.numel() for p in model.parameters()) < 11_200_000
    assert model.net.conv1.stride == (1, 1)


def test_unknown_arch():
    with pytest.raises(ValueError, match="unknown architecture"):
        build_model("vgg", "digits", 10, (1, 8, 8))


def test_small_cnn_channels_last_is_the_same_function(tmp_path):
    """The channels-last weights compute the contiguous model's logits and input gradients, and a checkpoint
    moves between the two layouts in both directions."""
    torch.manual_seed(0)
    fast = build_model("small_cnn", "digits", 10, (1, 8, 8), {"width": 32}).eval()
    assert fast.block2[0].weight.is_contiguous(memory_format=torch.channels_last)
    plain = build_model("small_cnn", "digits", 10, (1, 8, 8), {"width": 32}).eval()
    for p in plain.parameters():
        p.data = p.data.clone(memory_format=torch.contiguous_format)
    plain.load_state_dict(fast.state_dict())
    assert all(m.weight.stride() == torch.empty(m.weight.shape).stride() for m in plain.modules()
               if isinstance(m, torch.nn.Conv2d))  # row-major strides, also for the one-channel first layer
    x = torch.rand(50, 1, 8, 8)
    grads = []
    for model in (fast, plain):
        z = x.clone().requires_grad_(True)
        out = model(z)
        out.logsumexp(1).sum().backward()
        grads.append((out.detach(), z.grad))
    # relative norm, not elementwise: a max-pool window whose two largest inputs are within float rounding may
    # route one pixel's gradient differently in the two layouts
    for a, b in zip(grads[0], grads[1], strict=True):
        assert (a - b).norm() <= 1e-4 * b.norm()
    torch.save(plain.state_dict(), tmp_path / "w.pt")
    again = build_model("small_cnn", "digits", 10, (1, 8, 8), {"width": 32}).eval()
    again.load_state_dict(torch.load(tmp_path / "w.pt", weights_only=True))
    assert again.block2[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(again(x), grads[0][0], atol=1e-5)
