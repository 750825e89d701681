"""The SAM-family perturbation ε = ρ · d / ‖·‖ (METHODS.md, "Perturbation").

sam:  d = P⁻¹g,            normalised by ‖P⁻¹g‖ (or ‖g‖ with precond_normalize='grad')
asam: d = T² P⁻¹g,         normalised by ‖T P⁻¹g‖ (or ‖T g‖), T = |θ| + asam_eta
With no preconditioner P⁻¹g = g, which gives the papers' SAM and ASAM exactly.
`functional` perturbs like `sam`; it differs in the second gradient, not here.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

NORM_EPS = 1e-12


def global_norm(tensors: Sequence[Tensor]) -> Tensor:
    """L2 norm over all tensors together."""
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(list(tensors))))


def perturbation(kind: str, params: Sequence[Tensor], grads: Sequence[Tensor], pre_grads: Sequence[Tensor],
                 *, rho: float, asam_eta: float, normalize_by_grad: bool) -> list[Tensor]:
    """ε for each parameter. `pre_grads` is P⁻¹g (the same list as `grads` without a preconditioner)."""
    if kind == "asam":
        scale = [p.detach().abs().add_(asam_eta) for p in params]
        scaled = torch._foreach_mul(list(pre_grads), scale)  # T P⁻¹g
        norm = global_norm(torch._foreach_mul(list(grads), scale) if normalize_by_grad else scaled)
        direction = torch._foreach_mul(scaled, scale)  # T² P⁻¹g
    else:
        direction = list(pre_grads)
        norm = global_norm(grads if normalize_by_grad else direction)
    return torch._foreach_mul(direction, rho / (norm + NORM_EPS))
