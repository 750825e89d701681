"""`bar_rule: drift`, a balancer of ours (not the paper's): rescale each pair by SAM's first-order drift.

The BAR paper's Algorithms 2 and 3 (`bar.py`) rescale by a fixed factor 1 ± α_t η_t and take only the
sign from the norms. Before their text could be read, sharptune derived magnitude rules from SAM's
drift instead (close to the DAS/gBAR line of work); they stay as this option, with their own knobs.
For one pair (x, y) under SAM with radius ρ, D = ‖x‖² − ‖y‖² moves, to first order in ρ, as

    dD/dt = 2ηρ (‖g_x‖² − ‖g_y‖²) / ‖g‖                  (any regime; ‖g‖ the global gradient norm)
          = −2ηρ ‖g‖ D / (‖x‖² + ‖y‖²)                   (overparametrized: scalar output xᵀy)

and the drift rule applies that drift before the base step, S = ‖x‖² + ‖y‖²:
    x ← (1 + η c) x,   y ← (1 − η c) y        (x yᵀ unchanged to first order; ΔD = 2ηc S)
with c = μ_t (‖g_x‖² − ‖g_y‖²) / (‖g‖ S)   for nbar
and  c = −μ_t ‖g‖ D / S²                    for obar,
so that with an SGD base μ_t plays the role of ρ. ‖g‖ is the global norm over every parameter the
optimizer holds (`bar_norm: global`, the default) or the pair's √(‖g_x‖² + ‖g_y‖²) (`bar_norm: pair`).
Under AdamW (`bar_scale: adam`, the default) c is multiplied by the pair's ‖g / (√v̂ + eps)‖ / ‖g‖, the
ratio of AdamW's step to SGD's step per unit lr, so that μ0 = ρ keeps meaning SAM's drift.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

NORM_EPS = 1e-12
Coefficient = Callable[[Tensor, Tensor, Tensor, Tensor, Tensor], Tensor]  # (sx, sy, gx2, gy2, ‖g‖) -> c / μ_t


def _nbar(sx: Tensor, sy: Tensor, gx2: Tensor, gy2: Tensor, grad_norm: Tensor) -> Tensor:
    return (gx2 - gy2) / ((grad_norm + NORM_EPS) * (sx + sy) + NORM_EPS)


def _obar(sx: Tensor, sy: Tensor, gx2: Tensor, gy2: Tensor, grad_norm: Tensor) -> Tensor:
    return -grad_norm * (sx - sy) / ((sx + sy).square() + NORM_EPS)


COEFFICIENTS: dict[str, Coefficient] = {"nbar": _nbar, "obar": _obar}


def norms(tensors: Sequence[Tensor]) -> Tensor:
    """‖t‖ of every tensor as one vector (one foreach norm), in float32, or float64 where a tensor is."""
    dtype = torch.float64 if any(t.dtype == torch.float64 for t in tensors) else torch.float32
    return torch.stack(torch._foreach_norm(list(tensors), 2, dtype=dtype))


def adam_ratio(grads: Sequence[tuple[Tensor, Tensor]], second_moment: Sequence[Tensor], eps: float) -> Tensor:
    """‖g / (√v̂ + eps)‖ / ‖g‖ of each pair: how much longer AdamW's step is than SGD's, per unit lr.

    `second_moment` holds v̂ of x and of y for each pair in turn (x₀, y₀, x₁, y₁, …).
    """
    flat = [g for pair in grads for g in pair]
    scaled = torch._foreach_div(flat, torch._foreach_add(torch._foreach_sqrt(list(second_moment)), eps))
    num, den = norms([*scaled, *flat]).square().view(2, -1, 2).sum(dim=2).sqrt()
    return num / (den + NORM_EPS)


@torch.no_grad()
def drift_balance(kind: str, pairs: Sequence[tuple[Tensor, Tensor]], grads: Sequence[tuple[Tensor, Tensor]],
                  lrs: Sequence[float], mu: float, grad_norm: Tensor | None, scales: Tensor | None = None) -> None:
    """Apply one drift-rule step in place to every pair; `lrs` holds η of each pair's x.

    `grad_norm` is the global ‖g‖, or None for each pair's own norm; `scales` (one per pair) multiplies
    each pair's c (the AdamW ratio), 1 when None.
    """
    if not pairs:
        return
    xs, ys = [x for x, _ in pairs], [y for _, y in pairs]
    gxs, gys = [g for g, _ in grads], [g for _, g in grads]
    sx, sy, gx2, gy2 = norms([*xs, *ys, *gxs, *gys]).square().view(4, -1)  # one vector each, a slot per pair
    norm = grad_norm if grad_norm is not None else torch.sqrt(gx2 + gy2)
    # μ_t η: one host number, unless the pairs' parameter groups have different learning rates
    rate = mu * lrs[0] if len(set(lrs)) == 1 else sx.new_tensor([mu * lr for lr in lrs])
    eta_c = COEFFICIENTS[kind](sx, sy, gx2, gy2, norm) * (rate if scales is None else scales * rate)
    torch._foreach_mul_(xs, (1.0 + eta_c).unbind())  # x ← (1 + ηc) x
    torch._foreach_mul_(ys, (1.0 - eta_c).unbind())  # y ← (1 − ηc) y
