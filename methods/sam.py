"""The SAM-family perturbation ε = ρ · d / ‖·‖ (METHODS.md, "Perturbation").

sam:  d = P⁻¹g,            normalised by ‖P⁻¹g‖ (or ‖g‖ with precond_normalize='grad')
asam: d = T² P⁻¹g,         normalised by ‖T P⁻¹g‖ (or ‖T g‖)
With no preconditioner P⁻¹g = g, which gives the papers' SAM and ASAM exactly.
`functional` perturbs like `sam`; it differs in the second gradient, not here.

ASAM's T follows the official code (SamsungLabs/ASAM, `asam.py`): T = |w| + η on the weights and
T = 1 on every other tensor (biases, norm scales stay unscaled), η = asam_eta = 0.01. A tensor is a
weight when its name contains "weight", or, for tensors given without names, when it has two or
more dimensions (`is_weight`). `asam_scope: all` scales every tensor instead: with asam_eta = 0 that
is the davda54/sam variant (`adaptive=True`, T = |θ|).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

NORM_EPS = 1e-12


def global_norm(tensors: Sequence[Tensor]) -> Tensor:
    """L2 norm over all tensors together."""
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(list(tensors))))


def is_weight(name: str | None, tensor: Tensor) -> bool:
    """Official ASAM's test: "weight" in the parameter's name; without a name, two or more dimensions."""
    return "weight" in name if name is not None else tensor.dim() >= 2


def _times(tensors: Sequence[Tensor], chosen: Sequence[int], scale: Sequence[Tensor]) -> list[Tensor]:
    """tensors[i] · scale[k] for the k-th index i in `chosen` (one foreach product), the others as they are."""
    out = list(tensors)
    if chosen:
        for i, product in zip(chosen, torch._foreach_mul([out[i] for i in chosen], list(scale)), strict=True):
            out[i] = product
    return out


@torch.no_grad()
def perturbation(kind: str, params: Sequence[Tensor], grads: Sequence[Tensor], pre_grads: Sequence[Tensor],
                 *, rho: float, asam_eta: float, normalize_by_grad: bool,
                 scaled: Sequence[bool] | None = None) -> list[Tensor]:
    """ε for each parameter. `pre_grads` is P⁻¹g (the same list as `grads` without a preconditioner).

    `scaled` marks the tensors ASAM scales by T = |θ| + asam_eta (all of them when None). Each product
    is one foreach operator over every tensor: the cost does not grow with the number of tensors.
    """
    if kind == "asam":
        chosen = list(range(len(params))) if scaled is None else [i for i, s in enumerate(scaled) if s]
        scale = torch._foreach_abs([params[i] for i in chosen]) if chosen else []
        if scale:
            torch._foreach_add_(scale, asam_eta)  # T = |θ| + η
        tp = _times(pre_grads, chosen, scale)  # T P⁻¹g
        norm = global_norm(_times(grads, chosen, scale) if normalize_by_grad else tp)
        direction = _times(tp, chosen, scale)  # T² P⁻¹g
    else:
        direction = list(pre_grads)
        norm = global_norm(grads if normalize_by_grad else direction)
    return torch._foreach_mul(direction, rho / (norm + NORM_EPS))
