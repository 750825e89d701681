"""The vision models of the SAM papers, written out (torchvision and timm do not import beside our torch).

A registry of name patterns, each with its builder, so `model: wrn-28-10` is parsed, not looked up in
an if/else chain:

- `cnn`: a small three-convolution network with BatchNorm, for CPU runs (34k parameters);
- `resnet18`: the CIFAR variant of He et al.'s ResNet-18 (3×3 stem, no max-pool; kuangliu/pytorch-cifar),
  11.17M parameters for 10 classes;
- `resnetN`, N = 6n + 2: He et al.'s CIFAR ResNets (resnet20, resnet56, resnet110), identity shortcuts
  padded with zeros (their option A); resnet56 has 0.85M parameters;
- `wrn-D-K`, D = 6n + 4: Zagoruyko and Komodakis's Wide ResNet, n pre-activation blocks per group, width
  K; wrn-28-10 has 36.5M parameters, wrn-16-8 11.0M. davda54/sam's "WRN-16-8" is another network: it adds
  a block to each group (17M parameters); ours is the paper's.

Every model ends in adaptive average pooling, so any image size works (Fashion-MNIST's 28×28 as CIFAR's 32×32).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor, nn


def _conv3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


class _Head(nn.Sequential):
    """Average pooling to `grid` × `grid` (1: global) and the linear classifier."""

    def __init__(self, width: int, classes: int, grid: int = 1) -> None:
        super().__init__(nn.AdaptiveAvgPool2d(grid), nn.Flatten(), nn.Linear(width * grid * grid, classes))


# ------------------------------------------------------------------ small CNN
def small_cnn(channels: int, classes: int) -> nn.Module:
    """Three 3×3 convolutions (16, 32, 64 channels) with BatchNorm and ReLU, two max-pools, and a linear head on
    a 4 × 4 average-pooled grid (global pooling loses the shape: on Fashion-MNIST 0.55 against 0.80 after 250 steps)."""
    layers: list[nn.Module] = []
    for i, (cin, cout) in enumerate([(channels, 16), (16, 32), (32, 64)]):
        layers += [_conv3(cin, cout), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
        layers += [nn.MaxPool2d(2)] if i < 2 else []
    return nn.Sequential(*layers, _Head(64, classes, grid=4))


# ------------------------------------------------------------------ ResNets (post-activation)
class _Basic(nn.Module):
    """conv-BN-ReLU-conv-BN plus the shortcut, then ReLU. `pad_shortcut`: option A (zero-padded identity)."""

    def __init__(self, cin: int, cout: int, stride: int, pad_shortcut: bool) -> None:
        super().__init__()
        self.conv1, self.bn1 = _conv3(cin, cout, stride), nn.BatchNorm2d(cout)
        self.conv2, self.bn2 = _conv3(cout, cout), nn.BatchNorm2d(cout)
        self.stride, self.pad = stride, cout - cin
        self.option_a = pad_shortcut and (stride != 1 or cin != cout)  # subsample, then zero channels
        projection = (stride != 1 or cin != cout) and not pad_shortcut
        self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout)) \
            if projection else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        if self.option_a:
            half = self.pad // 2
            short = F.pad(x[:, :, ::self.stride, ::self.stride], (0, 0, 0, 0, half, self.pad - half))
        else:
            short = self.shortcut(x)
        return F.relu(out + short)


def _resnet(channels: int, classes: int, widths: list[int], blocks: int | list[int], pad_shortcut: bool) -> nn.Module:
    counts = blocks if isinstance(blocks, list) else [blocks] * len(widths)
    stem = [_conv3(channels, widths[0]), nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True)]
    layers, cin = [], widths[0]
    for stage, (width, count) in enumerate(zip(widths, counts, strict=True)):
        for b in range(count):
            layers.append(_Basic(cin, width, 2 if stage > 0 and b == 0 else 1, pad_shortcut))
            cin = width
    return nn.Sequential(*stem, *layers, _Head(cin, classes))


def resnet18(channels: int, classes: int) -> nn.Module:
    """ResNet-18, CIFAR variant: 3×3 stem, no max-pool, [2, 2, 2, 2] blocks of 64..512, 1×1 projections."""
    return _resnet(channels, classes, [64, 128, 256, 512], [2, 2, 2, 2], pad_shortcut=False)


def cifar_resnet(depth: int) -> Callable[[int, int], nn.Module]:
    """He et al.'s CIFAR ResNet-`depth`: (depth - 2) / 6 blocks in each of three stages of 16, 32, 64."""
    return lambda channels, classes: _resnet(channels, classes, [16, 32, 64], (depth - 2) // 6, pad_shortcut=True)


# ------------------------------------------------------------------ Wide ResNets (pre-activation)
class _WideBlock(nn.Module):
    """BN-ReLU-conv3×3-BN-ReLU-conv3×3; a 1×1 convolution on the pre-activated input where the shape changes."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(cin), _conv3(cin, cout, stride)
        self.bn2, self.conv2 = nn.BatchNorm2d(cout), _conv3(cout, cout)
        self.shortcut = nn.Conv2d(cin, cout, 1, stride=stride, bias=False) if stride != 1 or cin != cout else None

    def forward(self, x: Tensor) -> Tensor:
        act = F.relu(self.bn1(x))
        out = self.conv2(F.relu(self.bn2(self.conv1(act))))
        return out + (x if self.shortcut is None else self.shortcut(act))


def wide_resnet(depth: int, width: int) -> Callable[[int, int], nn.Module]:
    """WRN-`depth`-`width`: (depth - 4) / 6 blocks in each of three groups of 16K, 32K, 64K channels."""
    def build(channels: int, classes: int) -> nn.Module:
        layers: list[nn.Module] = [_conv3(channels, 16)]
        cin = 16
        for group, w in enumerate([16 * width, 32 * width, 64 * width]):
            for b in range((depth - 4) // 6):
                layers.append(_WideBlock(cin, w, 2 if group > 0 and b == 0 else 1))
                cin = w
        return nn.Sequential(*layers, nn.BatchNorm2d(cin), nn.ReLU(inplace=True), _Head(cin, classes))
    return build


# ------------------------------------------------------------------ the registry
Builder = Callable[[int, int], nn.Module]


@dataclass(frozen=True)
class ModelPattern:
    """A family of model names: `pattern` (a full match) and, from its groups, the builder or None (not valid)."""

    pattern: str
    build: Callable[..., Builder | None]


MODELS = (
    ModelPattern(r"cnn", lambda: small_cnn),
    ModelPattern(r"resnet18", lambda: resnet18),
    ModelPattern(r"resnet(\d+)", lambda d: cifar_resnet(int(d)) if int(d) >= 8 and (int(d) - 2) % 6 == 0 else None),
    ModelPattern(r"wrn-(\d+)-(\d+)", lambda d, k: wide_resnet(int(d), int(k))
                 if int(d) >= 10 and (int(d) - 4) % 6 == 0 and int(k) >= 1 else None),
)
ALLOWED = ("cnn, resnet18, resnetN for N = 6n + 2 (resnet20, resnet56, resnet110), "
           "wrn-D-K for D = 6n + 4 and K >= 1 (wrn-16-8, wrn-28-10)")


def model_builder(name: str) -> Builder | None:
    """The builder `(channels, classes) -> nn.Module` that `name` stands for, or None."""
    for entry in MODELS:
        match = re.fullmatch(entry.pattern, name)
        if match:
            return entry.build(*match.groups())
    return None


def build_model(name: str, channels: int, classes: int) -> nn.Module:
    """The model `name` for `channels`-channel images and `classes` classes, He-initialised convolutions."""
    builder = model_builder(name)
    if builder is None:
        raise ValueError(f"unknown model {name!r} (allowed: {ALLOWED})")
    model = builder(channels, classes)
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
    return model
