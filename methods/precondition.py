"""Preconditioners of the perturbation: P = diag(sqrt(v) + eps), applied as P⁻¹ g.

`adam` reads the base AdamW's bias-corrected second moment (from the previous base step);
`ema_sq` keeps its own EMA of g² (works with SGD); `fisher` keeps an EMA of the squared gradient
of the loss on labels sampled from the model's own predictions.

One rule for all three: P at step t is built from statistics of steps before t only, so the
current g² never enters its own preconditioner (AdamW's v̂ is from the previous base step; the
EMAs take this step's square after P is applied). Before any statistics exist, P is the identity.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def adam_second_moment(base: torch.optim.Optimizer, params: Sequence[Tensor]) -> list[Tensor] | None:
    """AdamW's bias-corrected v̂ per parameter (one foreach division), or None before its first step.

    The step counts are read on the host: AdamW keeps them as CPU scalars (unless capturable or fused)."""
    beta2 = base.param_groups[0]["betas"][1]
    states = [base.state.get(p) for p in params]
    if not all(state and "exp_avg_sq" in state for state in states):
        return None
    corrections = [1.0 - beta2 ** float(state["step"]) for state in states]
    return list(torch._foreach_div([state["exp_avg_sq"] for state in states], corrections)) if states else []


def update_ema(stats: list[Tensor], squares: Sequence[Tensor], beta: float) -> None:
    """v ← beta v + (1 - beta) s, in place."""
    torch._foreach_mul_(stats, beta)
    torch._foreach_add_(stats, list(squares), alpha=1.0 - beta)


def apply_inverse(grads: Sequence[Tensor], second_moment: Sequence[Tensor] | None, eps: float) -> list[Tensor]:
    """P⁻¹ g with P = diag(sqrt(v) + eps); identity when there is no v yet."""
    if second_moment is None:
        return list(grads)
    denom = torch._foreach_sqrt(list(second_moment))
    torch._foreach_add_(denom, eps)
    return torch._foreach_div(list(grads), denom)
