"""`diag/...` metrics for the workloads, from `methods.diagnostics` (docs/METHODS.md, "Diagnostics").

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


def sharpness(loss_fn: Callable[[], Tensor], model: nn.Module, optimizer: Any, *, seed: int, full_batch: bool,
              trace: bool = False, memory: dict[str, Any] | None = None) -> dict[str, float]:
    """λ_max; the SAM edge at the scheduled ρ and λ_max / edge where the edge applies; Tr(H) ± its error.

    The edge holds for full-batch, momentum-free GD or plain SAM only (`diagnostics.sam_edge_applies`);
    elsewhere nothing is logged for it, and the report says why it is missing. `memory` (a dict the
    workload keeps) carries the last top eigenvector, so the next power iteration starts from it: fewer
    Hessian-vector products the less the eigenvector moved since (on the MNIST MLP, calls 200 SAM steps
    apart, 15 % fewer).
    """
    params = [p for p in model.parameters() if p.requires_grad]
    memory = {} if memory is None else memory
    pair = diagnostics.top_eigenpair(loss_fn, params, model=model, seed=seed, start=memory.get("eigenvector"))
    memory["eigenvector"] = pair.vector
    out = {"diag/lambda_max": pair.value}
    if diagnostics.sam_edge_applies(optimizer, full_batch=full_batch) is None:
        norm = diagnostics.grad_norm(loss_fn, params, model=model)
        edge = diagnostics.sam_edge(norm, float(optimizer.param_groups[0]["lr"]), optimizer.scheduled_rho())
        out["diag/sam_edge"] = edge
        out["diag/lambda_over_edge"] = out["diag/lambda_max"] / edge if edge > 0 else float("inf")
    if trace:
        estimate = diagnostics.hessian_trace(loss_fn, params, model=model, seed=seed)
        out["diag/hessian_trace"] = estimate.trace
        out["diag/hessian_trace_stderr"] = estimate.stderr
    return out
