"""BAR: reproduce SAM's balancedness drift on scale-invariant pairs from the one gradient at hand.

A reconstruction: the BAR paper's Algorithms 2 (nBAR) and 3 (oBAR) could not be read, so these rules
are derived from SAM's drift, which is what the paper says BAR reproduces (docs/METHODS.md, "Balancer").
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

Every pair is balanced at once: a rule is a function of per-pair vectors (sx = ‖x‖², sy = ‖y‖²,
gx2 = ‖g_x‖², gy2 = ‖g_y‖², ‖g‖), so a step is a fixed number of operators whatever the number of pairs
(one foreach norm over every tensor, a few vector operations, two foreach scalings), and never reads a
value back to the host. The pairs are disjoint: each is balanced with the norms from before the step.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from methods._hparams import BALANCER_NAMES, schedule_factor
from methods._parts import Part, part
from methods.precondition import adam_second_moment
from methods.sam import global_norm

NORM_EPS = 1e-12
Coefficient = Callable[[Tensor, Tensor, Tensor, Tensor, Tensor], Tensor]  # (sx, sy, gx2, gy2, ‖g‖) -> c / μ_t


def _nbar(sx: Tensor, sy: Tensor, gx2: Tensor, gy2: Tensor, grad_norm: Tensor) -> Tensor:
    return (gx2 - gy2) / ((grad_norm + NORM_EPS) * (sx + sy) + NORM_EPS)


def _obar(sx: Tensor, sy: Tensor, gx2: Tensor, gy2: Tensor, grad_norm: Tensor) -> Tensor:
    return -grad_norm * (sx - sy) / ((sx + sy).square() + NORM_EPS)


COEFFICIENTS: dict[str, Coefficient] = {"nbar": _nbar, "obar": _obar}


def squared_norms(tensors: Sequence[Tensor]) -> Tensor:
    """‖t‖² of every tensor as one vector (one foreach norm), in float32, or float64 where a tensor is."""
    dtype = torch.float64 if any(t.dtype == torch.float64 for t in tensors) else torch.float32
    return torch.stack(torch._foreach_norm(list(tensors), 2, dtype=dtype)).square()


def adam_ratio(grads: Sequence[tuple[Tensor, Tensor]], second_moment: Sequence[Tensor], eps: float) -> Tensor:
    """‖g / (√v̂ + eps)‖ / ‖g‖ of each pair: how much longer AdamW's step is than SGD's, per unit lr.

    `second_moment` holds v̂ of x and of y for each pair in turn (x₀, y₀, x₁, y₁, …).
    """
    flat = [g for pair in grads for g in pair]
    scaled = torch._foreach_div(flat, torch._foreach_add(torch._foreach_sqrt(list(second_moment)), eps))
    num, den = squared_norms([*scaled, *flat]).view(2, -1, 2).sum(dim=2).sqrt()
    return num / (den + NORM_EPS)


@torch.no_grad()
def balance(kind: str, pairs: Sequence[tuple[Tensor, Tensor]], grads: Sequence[tuple[Tensor, Tensor]],
            lrs: Sequence[float], mu: float, grad_norm: Tensor | None, scales: Tensor | None = None) -> None:
    """Apply one balancer step in place to every pair; `lrs` holds η of each pair's x.

    `grad_norm` is the global ‖g‖, or None for each pair's own norm; `scales` (one per pair) multiplies
    each pair's c (the AdamW ratio), 1 when None.
    """
    if not pairs:
        return
    xs, ys = [x for x, _ in pairs], [y for _, y in pairs]
    gxs, gys = [g for g, _ in grads], [g for _, g in grads]
    sx, sy, gx2, gy2 = squared_norms([*xs, *ys, *gxs, *gys]).view(4, -1)  # one vector each, a slot per pair
    norm = grad_norm if grad_norm is not None else torch.sqrt(gx2 + gy2)
    # μ_t η: one host number, unless the pairs' parameter groups have different learning rates
    rate = mu * lrs[0] if len(set(lrs)) == 1 else sx.new_tensor([mu * lr for lr in lrs])
    eta_c = COEFFICIENTS[kind](sx, sy, gx2, gy2, norm) * (rate if scales is None else scales * rate)
    torch._foreach_mul_(xs, (1.0 + eta_c).unbind())  # x ← (1 + ηc) x
    torch._foreach_mul_(ys, (1.0 - eta_c).unbind())  # y ← (1 − ηc) y


class Balancer(Part):
    """BAR's step on the optimizer's pairs, from the first gradient g, before the base step."""

    takes = BALANCER_NAMES

    def __init__(self, opt: Any, names: Mapping[int, str]) -> None:
        self.opt, self.pairs, self.index = opt, opt._pairs, opt._pair_index
        self.groups = [opt._group[i] for i, _ in self.index]  # η of each pair: its x's group's lr

    def balance(self, grads: list[Tensor]) -> None:
        opt, hp = self.opt, self.opt.hparams
        mu = hp["mu0"] * schedule_factor(hp["schedule"], opt._step, hp["total_steps"])
        pair_grads = [(grads[i], grads[j]) for i, j in self.index]
        lrs = [opt.param_groups[k]["lr"] for k in self.groups]
        norm = global_norm(grads) if hp["bar_norm"] == "global" else None
        scales = None
        if hp["base"] == "adamw" and hp["bar_scale"] == "adam":
            v = adam_second_moment(opt.base, [t for pair in self.pairs for t in pair])
            if v is not None:  # before AdamW's first step its update is ±lr: ratio 1 / |g| per coordinate
                scales = adam_ratio(pair_grads, v, hp["eps"])  # every pair's ratio at once
        balance(self.name, self.pairs, pair_grads, lrs, mu, norm, scales)


@part("balancer", "nbar")
class Nbar(Balancer):
    """nBAR: c = μ_t (‖g_x‖² − ‖g_y‖²) / (‖g‖ S), SAM's first-order drift (COEFFICIENTS["nbar"])."""


@part("balancer", "obar")
class Obar(Balancer):
    """oBAR: c = −μ_t ‖g‖ D / S², SAM's overparametrized-regime drift (COEFFICIENTS["obar"])."""
