"""IRE: boost the update along the flattest coordinates (METHODS.md, "IRE").

Every K steps a diagonal curvature h is estimated and the mask marks exactly round(γ·p) coordinates
with the smallest h, one global threshold over all parameters, ties broken by position (stable
sort). After each base step Δ = θ_new − θ_old, θ ← θ_new + κ · mask ⊙ Δ.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor


def flat_mask(curvature: Sequence[Tensor], gamma: float) -> list[Tensor]:
    """Boolean masks (one per parameter) of the round(γ·p) smallest-curvature coordinates."""
    flat = torch.cat([h.detach().reshape(-1).float() for h in curvature])
    count = int(math.floor(gamma * flat.numel() + 0.5))
    chosen = torch.zeros(flat.numel(), dtype=torch.bool, device=flat.device)
    if count:
        # a selection, not a sort: everything below the count-th smallest value, then ties by position
        # (numpy's introselect is about 2x faster than torch.kthvalue on CPU, which CUDA lacks anyway)
        kth = np.partition(flat.cpu().numpy(), count - 1)[count - 1]
        threshold = torch.tensor(float(kth), dtype=flat.dtype, device=flat.device)
        chosen = flat < threshold
        ties = torch.nonzero(flat == threshold).flatten()[: count - int(chosen.sum())]
        chosen[ties] = True
    return [m.view_as(h) for m, h in zip(chosen.split([h.numel() for h in curvature]), curvature, strict=True)]


def boost_weights(masks: Sequence[Tensor], kappas: Sequence[float]) -> list[Tensor]:
    """−κ · mask per parameter: the weights `boost` takes (rebuilt only when κ or the mask changes)."""
    if len(set(kappas)) == 1:
        return list(torch._foreach_mul(list(masks), -kappas[0]))
    return [m * -kappa for m, kappa in zip(masks, kappas, strict=True)]


@torch.no_grad()
def boost(params: Sequence[Tensor], previous: Sequence[Tensor], weights: Sequence[Tensor]) -> None:
    """θ ← θ + κ · mask ⊙ (θ − θ_old) in place, as one fused pass: lerp(θ, θ_old, −κ · mask)."""
    torch._foreach_lerp_(list(params), list(previous), list(weights))
