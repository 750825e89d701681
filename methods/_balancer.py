"""BAR: reproduce SAM's balancedness drift on scale-invariant pairs from the one gradient at hand.

A reconstruction: the BAR paper's Algorithms 2 (nBAR) and 3 (oBAR) could not be read, so these rules
are derived from SAM's drift, which is what the paper says BAR reproduces (METHODS.md, "Balancer").
For one pair (x, y) under SAM with radius ρ, D = ‖x‖² − ‖y‖² moves, to first order in ρ, as

    dD/dt = 2ηρ (‖g_x‖² − ‖g_y‖²) / ‖g‖                  (any regime; ‖g‖ the global gradient norm)
          = −2ηρ ‖g‖ D / (‖x‖² + ‖y‖²)                   (overparametrized: scalar output xᵀy)

BAR applies that drift explicitly before the base step, S = ‖x‖² + ‖y‖²:
    x ← (1 + η c) x,   y ← (1 − η c) y        (x yᵀ unchanged to first order; ΔD = 2ηc S)
with c = μ_t (‖g_x‖² − ‖g_y‖²) / (‖g‖ S)   for nbar
and  c = −μ_t ‖g‖ D / S²                    for obar,
so that with an SGD base μ_t plays the role of ρ. ‖g‖ is the global norm over every parameter the
optimizer holds (`bar_norm: global`, SAM's own normaliser) or the pair's √(‖g_x‖² + ‖g_y‖²)
(`bar_norm: pair`). Under AdamW (`bar_scale: adam`) c is multiplied by the pair's
‖g / (√v̂ + eps)‖ / ‖g‖, the ratio of AdamW's step to SGD's step per unit lr, so that μ0 = ρ keeps
meaning SAM's drift (see `adam_ratio`). The rules are a table, so a variant is one more entry.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

NORM_EPS = 1e-12
Coefficient = Callable[[Tensor, Tensor, Tensor, Tensor, Tensor], Tensor]


def _nbar(x: Tensor, y: Tensor, gx: Tensor, gy: Tensor, grad_norm: Tensor) -> Tensor:
    gx2, gy2 = gx.square().sum(), gy.square().sum()
    return (gx2 - gy2) / ((grad_norm + NORM_EPS) * (x.square().sum() + y.square().sum()) + NORM_EPS)


def _obar(x: Tensor, y: Tensor, gx: Tensor, gy: Tensor, grad_norm: Tensor) -> Tensor:
    sx, sy = x.square().sum(), y.square().sum()
    return -grad_norm * (sx - sy) / ((sx + sy).square() + NORM_EPS)


COEFFICIENTS: dict[str, Coefficient] = {"nbar": _nbar, "obar": _obar}


def adam_ratio(grads: Sequence[Tensor], second_moment: Sequence[Tensor], eps: float) -> Tensor:
    """‖g / (√v̂ + eps)‖ / ‖g‖ over `grads`: how much longer AdamW's step is than SGD's, per unit lr."""
    scaled = torch._foreach_div(list(grads), torch._foreach_add(torch._foreach_sqrt(list(second_moment)), eps))
    num = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(scaled)))
    den = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(list(grads))))
    return num / (den + NORM_EPS)


@torch.no_grad()
def balance(kind: str, pairs: Sequence[tuple[Tensor, Tensor]], grads: Sequence[tuple[Tensor, Tensor]],
            lrs: Sequence[float], mu: float, grad_norm: Tensor | None,
            scales: Sequence[Tensor | float] | None = None) -> None:
    """Apply one balancer step in place to every pair; `lrs` holds η of each pair's x.

    `grad_norm` is the global ‖g‖, or None for each pair's own norm; `scales` multiplies each pair's
    c (the AdamW ratio), 1 when None.
    """
    coefficient = COEFFICIENTS[kind]
    scales = scales if scales is not None else [1.0] * len(pairs)
    for (x, y), (gx, gy), lr, scale in zip(pairs, grads, lrs, scales, strict=True):
        norm = grad_norm if grad_norm is not None else torch.sqrt(gx.square().sum() + gy.square().sum())
        c = coefficient(x, y, gx, gy, norm) * (mu * lr * scale)
        x.mul_(1.0 + c)
        y.mul_(1.0 - c)
