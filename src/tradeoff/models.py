"""Architectures. Every model takes inputs in the dataset's raw range ([0, 1] for images), normalizes
inside, and returns logits. ``forward_features`` also returns two intermediate feature maps (the
inputs of the mixing network)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

NORMALIZATION = {
    "digits": ((0.3,), (0.35,)),
    "mnist": ((0.1307,), (0.3081,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2471, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}


class Classifier(nn.Module):
    """Base class: per-channel normalization inside, logits out, two feature maps on request."""

    def __init__(self, mean: Sequence[float] | None = None, std: Sequence[float] | None = None):
        super().__init__()
        self.normalize_input = mean is not None
        if mean is not None and std is not None:
            self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
            self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std if self.normalize_input else x

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)[0]


class SmallCNN(Classifier):
    """Three 3×3 conv layers and a two-layer head; for 8×8 digits (≈90k params at width 32) or MNIST.

    The weights are kept channels-last: the same function (outputs and input gradients agree with the
    contiguous layout to float rounding), computed 1.15–1.35× faster by oneDNN on a CPU, mostly in max-pooling
    (benchmarks/layout.py).
    """

    def __init__(self, in_channels: int, image_size: int, num_classes: int, width: int = 32,
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None):
        super().__init__(mean, std)
        self.block1 = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU())
        self.block2 = nn.Sequential(nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.block3 = nn.Sequential(nn.Conv2d(2 * width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        side = image_size // 4
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(2 * width * side * side, 4 * width), nn.ReLU(),
                                  nn.Linear(4 * width, num_classes))
        self.feature_channels = (width, 2 * width)
        self.to(memory_format=torch.channels_last)

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        f1 = self.block1(self.normalize(x))
        f2 = self.block2(f1)
        return self.head(self.block3(f2)), [f1, f2]


class StrideCNN(Classifier):
    """Two 4×4 stride-2 convolutions and a two-layer head: the MNIST network of Wong & Kolter (2018) and of
    Wong et al. (2020, "Fast is better than free"), 16/32 channels and 100 hidden units at ``width`` 16.

    About 0.6 M multiply-adds per 28×28 image at width 16 (≈ 1/35 of :class:`SmallCNN` at width 32), which is
    what makes adversarial training on the 55,000 MNIST training images affordable on a CPU. Kept channels-last
    like :class:`SmallCNN` (an input-gradient pass is about 1.3× faster in oneDNN; benchmarks/layout.py).
    """

    def __init__(self, in_channels: int, image_size: int, num_classes: int, width: int = 16, hidden: int = 100,
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None):
        super().__init__(mean, std)
        self.block1 = nn.Sequential(nn.Conv2d(in_channels, width, 4, stride=2, padding=1), nn.ReLU())
        self.block2 = nn.Sequential(nn.Conv2d(width, 2 * width, 4, stride=2, padding=1), nn.ReLU())
        side = image_size // 4
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(2 * width * side * side, hidden), nn.ReLU(),
                                  nn.Linear(hidden, num_classes))
        self.feature_channels = (width, 2 * width)
        self.to(memory_format=torch.channels_last)

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        f1 = self.block1(self.normalize(x))
        f2 = self.block2(f1)
        return self.head(f2), [f1, f2]


class MLP(Classifier):
    """Fully connected ReLU network for low-dimensional synthetic data."""

    def __init__(self, in_features: int, num_classes: int, hidden: Sequence[int] = (64, 64)):
        super().__init__()
        if len(hidden) < 2:
            raise ValueError("the MLP needs at least two hidden layers (they are its feature maps)")
        layers: list[nn.Module] = []
        width = in_features
        for h in hidden:
            layers.append(nn.Sequential(nn.Linear(width, h), nn.ReLU()))
            width = h
        self.hidden = nn.ModuleList(layers)
        self.out = nn.Linear(width, num_classes)
        self.feature_channels = (hidden[0], hidden[1])

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        feats = []
        h = x
        for layer in self.hidden:
            h = layer(h)
            feats.append(h)
        return self.out(h), feats[:2]


class LinearBinary(Classifier):
    """sign(w·x + b) as a two-class model: logits (−s/2, s/2) with s = w·x + b, so P(class 1) = sigmoid(s)."""

    def __init__(self, in_features: int):
        super().__init__()
        self.linear = nn.Linear(in_features, 1)
        self.feature_channels = (in_features, 1)

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        s = self.linear(x)
        return torch.cat([-s / 2, s / 2], dim=1), [x, s]


class ResNet18(Classifier):
    """torchvision's ResNet-18 in its CIFAR form (3×3 stem, stride 1, no max-pool)."""

    def __init__(self, num_classes: int, mean: Sequence[float], std: Sequence[float]):
        super().__init__(mean, std)
        import torchvision

        net = torchvision.models.resnet18(weights=None, num_classes=num_classes)
        net.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
        self.net = net
        self.feature_channels = (64, 128)

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        n = self.net
        h = n.relu(n.bn1(n.conv1(self.normalize(x))))
        f1 = n.layer1(h)
        f2 = n.layer2(f1)
        h = n.layer4(n.layer3(f2))
        return n.fc(torch.flatten(n.avgpool(h), 1)), [f1, f2]


class WideBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(cin), nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2, self.conv2 = nn.BatchNorm2d(cout), nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.shortcut = None if (cin == cout and stride == 1) else nn.Conv2d(cin, cout, 1, stride, 0, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        o = F.relu(self.bn1(x))
        y = self.conv1(o)
        y = self.conv2(F.relu(self.bn2(y)))
        return y + (x if self.shortcut is None else self.shortcut(o))


class WideResNet(Classifier):
    """WideResNet-(depth)-(widen) as used by TRADES/PGD-AT on CIFAR (pre-activation blocks).

    torchvision ships only the ImageNet-style wide ResNets, so the CIFAR variant is written here.
    """

    def __init__(self, num_classes: int, mean: Sequence[float], std: Sequence[float], depth: int = 34,
                 widen: int = 10):
        super().__init__(mean, std)
        if (depth - 4) % 6:
            raise ValueError("WideResNet depth must be 6n+4")
        n = (depth - 4) // 6
        widths = [16, 16 * widen, 32 * widen, 64 * widen]
        self.conv1 = nn.Conv2d(3, widths[0], 3, 1, 1, bias=False)

        def stage(cin: int, cout: int, stride: int) -> nn.Sequential:
            return nn.Sequential(*[WideBlock(cin if i == 0 else cout, cout, stride if i == 0 else 1)
                                   for i in range(n)])

        self.block1 = stage(widths[0], widths[1], 1)
        self.block2 = stage(widths[1], widths[2], 2)
        self.block3 = stage(widths[2], widths[3], 2)
        self.bn = nn.BatchNorm2d(widths[3])
        self.fc = nn.Linear(widths[3], num_classes)
        self.feature_channels = (widths[1], widths[2])

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        f1 = self.block1(self.conv1(self.normalize(x)))
        f2 = self.block2(f1)
        h = F.relu(self.bn(self.block3(f2)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(h, 1), 1)), [f1, f2]


def build_model(arch: str, dataset: str, num_classes: int, input_shape: Sequence[int],
                options: Mapping[str, Any] | None = None) -> Classifier:
    """Instantiate architecture ``arch`` for a dataset's input shape and class count."""
    opts = dict(options or {})
    mean, std = NORMALIZATION.get(dataset, (None, None))
    if arch == "small_cnn":
        return SmallCNN(input_shape[0], input_shape[-1], num_classes, width=int(opts.get("width", 32)),
                        mean=mean, std=std)
    if arch == "stride_cnn":
        return StrideCNN(input_shape[0], input_shape[-1], num_classes, width=int(opts.get("width", 16)),
                         hidden=int(opts.get("hidden", 100)), mean=mean, std=std)
    if arch == "mlp":
        return MLP(int(input_shape[0]), num_classes, hidden=tuple(opts.get("hidden", (64, 64))))
    if arch == "linear":
        if num_classes != 2:
            raise ValueError("the linear model is a binary classifier")
        return LinearBinary(int(input_shape[0]))
    if arch == "resnet18":
        return ResNet18(num_classes, mean, std)
    if arch == "wrn34_10":
        return WideResNet(num_classes, mean, std, depth=int(opts.get("depth", 34)), widen=int(opts.get("widen", 10)))
    raise ValueError(f"unknown architecture '{arch}'")


ARCHITECTURES = ("small_cnn", "stride_cnn", "mlp", "linear", "resnet18", "wrn34_10")
