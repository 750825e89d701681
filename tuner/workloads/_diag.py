"""`diag/...` metrics for the workloads, from `methods.diagnostics` (METHODS.md, "Diagnostics").

The workloads only name things: the measurements themselves live in `methods.diagnostics`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from torch import Tensor, nn

from methods import diagnostics


def balancedness(pairs: Sequence[tuple[Tensor, Tensor]]) -> dict[str, float]:
    """Mean and max |‖x‖² − ‖y‖²| over the scale-invariant pairs."""
    result = diagnostics.balancedness(pairs)
    return {"diag/balancedness_mean": result["mean"], "diag/balancedness_max": result["max"]}


def sharpness(loss_fn: Callable[[], Tensor], model: nn.Module, optimizer: Any, *, seed: int,
              trace: bool = False) -> dict[str, float]:
    """λ_max, the SAM edge for the optimizer's lr and ρ (ρ = 0 unless it perturbs), their ratio, Tr(H)."""
    params = [p for p in model.parameters() if p.requires_grad]
    lam = diagnostics.lambda_max(loss_fn, params, model=model, seed=seed)
    norm = diagnostics.grad_norm(loss_fn, params, model=model)
    rho = float(getattr(optimizer, "hparams", {}).get("rho") or 0.0)
    edge = diagnostics.sam_edge(norm, float(optimizer.param_groups[0]["lr"]), rho)
    out = {"diag/lambda_max": lam, "diag/sam_edge": edge,
           "diag/lambda_over_edge": lam / edge if edge > 0 else float("inf")}
    if trace:
        out["diag/hessian_trace"] = diagnostics.hessian_trace(loss_fn, params, model=model, seed=seed)
    return out
