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


def _times(tensors: Sequence[Tensor], scale: Sequence[Tensor | None]) -> list[Tensor]:
    return [t if s is None else t * s for t, s in zip(tensors, scale, strict=True)]


def perturbation(kind: str, params: Sequence[Tensor], grads: Sequence[Tensor], pre_grads: Sequence[Tensor],
                 *, rho: float, asam_eta: float, normalize_by_grad: bool,
                 scaled: Sequence[bool] | None = None) -> list[Tensor]:
    """ε for each parameter. `pre_grads` is P⁻¹g (the same list as `grads` without a preconditioner).

    `scaled` marks the tensors ASAM scales by T = |θ| + asam_eta (all of them when None).
    """
    if kind == "asam":
        flags = scaled if scaled is not None else [True] * len(params)
        scale = [p.detach().abs().add_(asam_eta) if s else None for p, s in zip(params, flags, strict=True)]
        tp = _times(pre_grads, scale)  # T P⁻¹g
        norm = global_norm(_times(grads, scale) if normalize_by_grad else tp)
        direction = _times(tp, scale)  # T² P⁻¹g
    else:
        direction = list(pre_grads)
        norm = global_norm(grads if normalize_by_grad else direction)
    return torch._foreach_mul(direction, rho / (norm + NORM_EPS))
