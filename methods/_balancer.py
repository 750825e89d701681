"""BAR: reproduce SAM's balancedness drift on scale-invariant pairs from the one gradient at hand.

For each pair (x, y), D = ‖x‖² − ‖y‖², and before the base step
    x ← (1 + η c) x,   y ← (1 − η c) y        (x yᵀ unchanged to first order)
with c = μ_t (‖g_x‖² − ‖g_y‖²) / (‖g‖ (‖x‖² + ‖y‖²))  for nbar (SAM's drift, to first order in ρ)
and  c = −μ_t D                                         for obar (gradient of the penalty μ_t D²/4).
The rules are a table, so a variant is one more entry.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

NORM_EPS = 1e-12
Coefficient = Callable[[Tensor, Tensor, Tensor, Tensor, float], Tensor]


def _nbar(x: Tensor, y: Tensor, gx: Tensor, gy: Tensor, mu: float) -> Tensor:
    gx2, gy2 = gx.square().sum(), gy.square().sum()
    grad_norm = torch.sqrt(gx2 + gy2)
    return mu * (gx2 - gy2) / ((grad_norm + NORM_EPS) * (x.square().sum() + y.square().sum()) + NORM_EPS)


def _obar(x: Tensor, y: Tensor, gx: Tensor, gy: Tensor, mu: float) -> Tensor:
    return -mu * (x.square().sum() - y.square().sum())


COEFFICIENTS: dict[str, Coefficient] = {"nbar": _nbar, "obar": _obar}


@torch.no_grad()
def balance(kind: str, pairs: Sequence[tuple[Tensor, Tensor]], grads: Sequence[tuple[Tensor, Tensor]],
            lrs: Sequence[float], mu: float) -> None:
    """Apply one balancer step in place to every pair; `lrs` holds η of each pair's x."""
    coefficient = COEFFICIENTS[kind]
    for (x, y), (gx, gy), lr in zip(pairs, grads, lrs, strict=True):
        c = coefficient(x, y, gx, gy, mu) * lr
        x.mul_(1.0 + c)
        y.mul_(1.0 - c)
