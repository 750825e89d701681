"""The optimizer a training stack's loop holds when the method's step runs somewhere else.

A stack's loop calls `optimizer.step()` (HF Trainer) or `optimizer.step(closure)` (Lightning) on its
own schedule, but a sharptune step runs the model itself, two or three times. The adapter lets the
loop keep its bookkeeping (lr schedulers, step counters, checkpoints) on the method's param groups and
state, while the step itself is the stack-specific code's: `step()` does nothing, `step(closure)` just
calls the closure, which runs the method's step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from methods._optimizer import SharpOptimizer


class SteppedElsewhere(torch.optim.Optimizer):
    """Param groups, state and state_dict of `sharp`; `step` only calls the closure it is given."""

    def __init__(self, sharp: SharpOptimizer) -> None:
        self.sharp = sharp
        super().__init__(sharp.param_groups, sharp.defaults)
        self.param_groups = sharp.param_groups
        self.state = sharp.state

    def step(self, closure: Callable[[], Any] | None = None) -> Any:  # type: ignore[override]
        return None if closure is None else closure()

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.sharp.zero_grad(set_to_none)

    def state_dict(self) -> dict[str, Any]:  # type: ignore[override]
        return self.sharp.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:  # type: ignore[override]
        self.sharp.load_state_dict(state_dict)  # generator states moved to the device come back (`Passes`)
        self.param_groups = self.sharp.param_groups
