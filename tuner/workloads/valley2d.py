"""IRE's two-dimensional valley L(u, v) = (1 + u²) v² / 2 (docs/METHODS.md, "IRE").

The valley floor v = 0 is flat in u but its sharpness 1 + u² shrinks toward u = 0: plain GD
settles at the floor and stops moving u, while IRE's boost of the flat coordinate drives u to 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from tuner.workloads._base import Closure, Workload
from tuner.workloads._options import option
from tuner.workloads._registry import register


@dataclass(frozen=True)
class ValleyOptions:
    u0: float = option(1.0)
    v0: float = option(0.01)


class _Valley(nn.Module):
    def __init__(self, u0: float, v0: float) -> None:
        super().__init__()
        self.u = nn.Parameter(torch.tensor([u0]))
        self.v = nn.Parameter(torch.tensor([v0]))

    def forward(self) -> Tensor:
        return ((1 + self.u**2) * self.v**2 / 2).sum()


@register
class Valley2D(Workload):
    """IRE's valley L(u, v) = (1 + u²) v² / 2 from a chosen start point; full batch, logs u and v."""

    name = "valley2d"
    Options = ValleyOptions
    primary_metric = ("eval/loss", "min")

    def __init__(self, options: ValleyOptions, *, seed: int, device: torch.device) -> None:
        super().__init__(options, seed=seed, device=device)
        self.model = _Valley(options.u0, options.v0).to(device)
        self.start_training_rng()

    def next_batch(self) -> None:
        return None  # full batch: the loss is deterministic

    def closure(self, batch: Any) -> Closure:
        def run() -> tuple[Tensor, Tensor]:
            loss = self.model()
            return loss, loss.reshape(1)
        return run

    def evaluate(self) -> dict[str, float]:
        with torch.no_grad():
            return {"eval/loss": float(self.model())}

    def diagnostics(self, optimizer: Any) -> dict[str, float]:
        return {"diag/u": float(self.model.u.detach()), "diag/v": float(self.model.v.detach())}
