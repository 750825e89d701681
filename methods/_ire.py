"""IRE: boost the update along the flattest coordinates (METHODS.md, "IRE").

Every K steps after the IRE warm-up a diagonal curvature h is estimated and the mask marks the
coordinates with the smallest h, one global threshold over all parameters. After each base step
Δ = θ_new − θ_old, θ ← θ_new + κ · mask ⊙ Δ.

Defaults follow the official code (wmz9/IRE-algorithm-framework):
- warm-up: IRE starts late, after a third of `total_steps` (ViT-S/ImageNet: IRE from epoch 100 of
  300; CIFAR: `IRE_start_epoch` 70 of 200); no mask and no boost before. And never a boost while the
  learning rate is still warming up (the official loop boosts only after `warmup_iters`): the lr
  warm-up lasts until every group's lr has reached its configured peak or stopped rising.
- κ decay (`kappa_decay`): κ_t = κ · η_t / η_peak with η_peak the configured lr (`prog * lr / base_lr`).
- mask ties (`ire_ties`): "exact" (default) marks exactly round(γ·p) coordinates, ties broken by
  position (stable), so the mask size never depends on ties: on the valley L = (1 + u²)v²/2 both
  curvatures reach 0 once v underflows, and a tie rule that takes both would boost v and diverge.
  "official" marks the int(γ·p) smallest plus every coordinate tied at the threshold (h ≤ h_(k)),
  as the official `update_mask` (its γ > 0.5 branch selects from the top, one coordinate more).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from methods import _device

START_FRACTION = 1 / 3  # official runs: IRE from epoch 100 of 300 (ViT), 70 of 200 (CIFAR)


def ire_start(hparams: Mapping[str, Any]) -> int:
    """Steps without IRE: `warmup` if set, else a third of `total_steps` (0 without a horizon)."""
    if hparams.get("warmup") is not None:
        return int(hparams["warmup"])
    total = hparams.get("total_steps")
    return int(round(START_FRACTION * total)) if total else 0


def _kth_smallest(flat: Tensor, k: int) -> Tensor:
    """A selection, not a sort: numpy's introselect on CPU (about 2x faster than torch.kthvalue there),
    torch.kthvalue on an accelerator (no copy to the host)."""
    if _device.on_accelerator(flat):
        return torch.kthvalue(flat, k).values
    kth = np.partition(flat.numpy(), k - 1)[k - 1]
    return torch.tensor(float(kth), dtype=flat.dtype, device=flat.device)


def flat_mask(curvature: Sequence[Tensor], gamma: float, ties: str = "exact") -> list[Tensor]:
    """Boolean masks (one per parameter) of the smallest-curvature coordinates (see `ire_ties` above)."""
    flat = torch.cat([h.detach().reshape(-1).float() for h in curvature])
    exact = ties == "exact"
    count = int(math.floor(gamma * flat.numel() + 0.5)) if exact else int(gamma * flat.numel())
    if not count:
        chosen = torch.zeros(flat.numel(), dtype=torch.bool, device=flat.device)
    elif not exact:
        chosen = flat <= _kth_smallest(flat, count)
    elif _device.on_accelerator(flat):
        chosen = _exact_on_device(flat, count)
    else:
        chosen = _exact_on_host(flat, count)
    return [m.view_as(h) for m, h in zip(chosen.split([h.numel() for h in curvature]), curvature, strict=True)]


def _exact_on_device(flat: Tensor, count: int) -> Tensor:
    """Everything below the threshold, then ties by position up to `count`, without a host sync."""
    threshold = _kth_smallest(flat, count)
    below = flat < threshold
    tied = flat == threshold
    return below | (tied & (torch.cumsum(tied, 0) <= count - below.sum()))


def _exact_on_host(flat: Tensor, count: int) -> Tensor:
    """The same selection as `_exact_on_device`; on the host reading a count is free, so the running
    sum over all p coordinates (most of the cost) is needed only when ties straddle the threshold."""
    threshold = _kth_smallest(flat, count)
    chosen = flat <= threshold
    surplus = int(chosen.sum()) - count  # tied coordinates beyond the count: drop the last ones by position
    if surplus:
        tied = (flat == threshold).nonzero().squeeze(1)
        chosen[tied[len(tied) - surplus:]] = False
    return chosen


def boost_weights(masks: Sequence[Tensor], kappas: Sequence[float]) -> list[Tensor]:
    """−κ · mask per parameter: the weights `boost` takes (rebuilt only when κ or the mask changes)."""
    if len(set(kappas)) == 1:
        return list(torch._foreach_mul(list(masks), -kappas[0]))
    return [m * -kappa for m, kappa in zip(masks, kappas, strict=True)]


@torch.no_grad()
def boost(params: Sequence[Tensor], previous: Sequence[Tensor], weights: Sequence[Tensor]) -> None:
    """θ ← θ + κ · mask ⊙ (θ − θ_old) in place, as one fused pass: lerp(θ, θ_old, −κ · mask)."""
    torch._foreach_lerp_(list(params), list(previous), list(weights))
