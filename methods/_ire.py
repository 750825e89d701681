"""IRE: boost the update along the flattest coordinates (METHODS.md, "IRE").

Every K steps a diagonal curvature h is estimated and the mask marks exactly round(γ·p) coordinates
with the smallest h, one global threshold over all parameters, ties broken by position (stable
sort). After each base step Δ = θ_new − θ_old, θ ← θ_new + κ · mask ⊙ Δ.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor


def flat_mask(curvature: Sequence[Tensor], gamma: float) -> list[Tensor]:
    """Boolean masks (one per parameter) of the round(γ·p) smallest-curvature coordinates."""
    flat = torch.cat([h.detach().reshape(-1).float() for h in curvature])
    count = int(math.floor(gamma * flat.numel() + 0.5))
    chosen = torch.zeros(flat.numel(), dtype=torch.bool, device=flat.device)
    if count:
        # kthvalue instead of a full sort: everything below the threshold, then ties by position
        threshold = torch.kthvalue(flat.cpu(), count).values.to(flat.device)
        chosen = flat < threshold
        ties = torch.nonzero(flat == threshold).flatten()[: count - int(chosen.sum())]
        chosen[ties] = True
    return [m.view_as(h) for m, h in zip(chosen.split([h.numel() for h in curvature]), curvature, strict=True)]


@torch.no_grad()
def boost(params: Sequence[Tensor], previous: Sequence[Tensor], masks: Sequence[Tensor],
          kappas: Sequence[float]) -> None:
    """θ ← θ + κ · mask ⊙ (θ − θ_old), in place (`previous` is consumed as scratch)."""
    delta = list(previous)
    torch._foreach_sub_(delta, list(params))  # θ_old − θ
    torch._foreach_mul_(delta, list(masks))
    if len(set(kappas)) == 1:
        torch._foreach_sub_(list(params), delta, alpha=kappas[0])
    else:
        for p, d, kappa in zip(params, delta, kappas, strict=True):
            p.sub_(d, alpha=kappa)
