"""The BAR paper's scale-invariant toys, where balancedness D = ‖x‖² − ‖y‖² is the quantity to watch.

`matrix` (not overparametrized): E ½‖x yᵀ − (A + αN)‖², x ∈ ℝᵐ, y ∈ ℝⁿ, A fixed, N standard normal.
`vector` (overparametrized):     E ½(xᵀy − (a + αn))²,  x, y ∈ ℝᵈ, a = 1, n standard normal.
α sets the noise (the SNR). SAM drives |D| toward 0, faster with more noise; SGD keeps D almost
constant; BAR (Algorithms 2/3) should shrink |D| too, at SGD's cost. The paper's own settings (App. A.4)
are in benchmarks/bar_toys.py. `init_imbalance` r scales x by r and y by 1/r at initialisation, so D starts
far from 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn

from tuner.workloads._base import Closure, Workload
from tuner.workloads._data import generator, to_device
from tuner.workloads._options import option
from tuner.workloads._registry import register


def _positive(v: float) -> bool:
    return v > 0


@dataclass(frozen=True)
class ScaleInvariantOptions:
    variant: Literal["matrix", "vector"] = "matrix"
    dim: int = option(10, lambda v: v >= 1, "an integer >= 1")
    alpha: float = option(0.5, lambda v: v >= 0, "a float >= 0")
    init_scale: float = option(0.5, _positive, "a float > 0")
    init_imbalance: float = option(1.0, _positive, "a float > 0 (1 = balanced in expectation)")
    batch_size: int = option(1, lambda v: v >= 1, "an integer >= 1 (noise samples per step)")


class _Product(nn.Module):
    def __init__(self, x: Tensor, y: Tensor, matrix: bool) -> None:
        super().__init__()
        self.x, self.y, self.matrix = nn.Parameter(x), nn.Parameter(y), matrix

    def forward(self) -> Tensor:
        return torch.outer(self.x, self.y) if self.matrix else (self.x * self.y).sum()


@register
class ScaleInvariant(Workload):
    """BAR's scale-invariant toys (x yᵀ ≈ A + αN, or xᵀy ≈ a + αn); pairs = [(x, y)]."""

    name = "scale_invariant"
    Options = ScaleInvariantOptions
    primary_metric = ("eval/loss", "min")

    def __init__(self, options: ScaleInvariantOptions, *, seed: int, device: torch.device) -> None:
        super().__init__(options, seed=seed, device=device)
        d, r, s = options.dim, options.init_imbalance, options.init_scale
        g = generator(seed, "init")
        self.matrix = options.variant == "matrix"
        x = torch.randn(d, generator=g) * s * r / d**0.5
        y = torch.randn(d, generator=g) * s / r / d**0.5
        self.target = (torch.randn(d, d, generator=g) / d**0.5 if self.matrix else torch.tensor(1.0)).to(device)
        self.model = _Product(x, y, self.matrix).to(device)
        self.pairs = [(self.model.x, self.model.y)]
        self.draws = 0
        self.start_training_rng()

    def next_batch(self) -> Tensor:
        """`batch_size` noisy targets A + αN (the noise stream is fixed by the seed)."""
        g = generator(self.seed, "noise", self.draws)
        self.draws += 1
        noise = to_device(torch.randn(self.options.batch_size, *self.target.shape, generator=g), self.device)
        return self.target + self.options.alpha * noise

    def closure(self, batch: Tensor) -> Closure:
        def run() -> tuple[Tensor, Tensor]:
            prediction = self.model()
            residual = (prediction - batch).reshape(len(batch), -1)
            return 0.5 * residual.pow(2).sum(dim=1).mean(), prediction
        return run

    def evaluate(self) -> dict[str, float]:
        """The noise-free part of the loss, ½‖x yᵀ − A‖² (the noise adds a constant α²·size/2)."""
        with torch.no_grad():
            return {"eval/loss": float(0.5 * (self.model() - self.target).pow(2).sum())}

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "draws": self.draws}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.draws = int(state["draws"])
