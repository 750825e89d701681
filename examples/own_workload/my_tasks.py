"""Your own workload in about 30 lines: an MLP on two noisy moons, through `DatasetWorkload`.

Named in a spec as `workload: {name: my_tasks.py:Moons}` (a path relative to the spec's folder).
Ray ships this file to every worker; nothing needs installing there.
"""

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import TensorDataset

from tuner.workloads import DatasetWorkload, generator, option


def moons(n: int, noise: float, g: torch.Generator) -> TensorDataset:
    t = torch.rand(n, generator=g) * math.pi
    upper = torch.rand(n, generator=g) < 0.5
    x = torch.where(upper, torch.cos(t), 1 - torch.cos(t))
    y = torch.where(upper, torch.sin(t), 0.5 - torch.sin(t))
    points = torch.stack([x, y], 1) + noise * torch.randn(n, 2, generator=g)
    return TensorDataset(points, (~upper).long())


@dataclass(frozen=True)
class MoonsOptions:
    width: int = option(64, lambda v: v >= 1, "an integer >= 1")
    depth: int = option(2, lambda v: 1 <= v <= 8, "an integer in 1..8")
    noise: float = option(0.2, lambda v: v >= 0, "a float >= 0")
    batch_size: int = option(32, lambda v: v >= 1, "an integer >= 1")
    label_noise: float = option(0.0, lambda v: 0 <= v < 1, "a flip rate in [0, 1)")


class Moons(DatasetWorkload):
    """An MLP on two noisy moons (2-D points, two classes)."""

    Options = MoonsOptions
    primary_metric = ("eval/accuracy", "max")

    def datasets(self) -> tuple[TensorDataset, TensorDataset]:
        g = generator(0, "moons")  # the same data for every seed; the seed varies init and batch order
        return moons(2000, self.options.noise, g), moons(500, self.options.noise, g)

    def build_model(self) -> nn.Module:
        layers, width = [], 2
        for _ in range(self.options.depth):
            layers += [nn.Linear(width, self.options.width), nn.ReLU()]
            width = self.options.width
        return nn.Sequential(*layers, nn.Linear(width, 2))
