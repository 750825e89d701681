"""Mixed precision inside the optimizer: autocast around every pass, and fp16's dynamic loss scale.

The method runs the closure itself, two or three times a step, so it is the one place that can
autocast each pass and scale each pass's loss. fp16 follows `torch.amp.GradScaler`: every loss is
multiplied by the scale S before its gradient is taken, and every gradient is divided by S before any
norm sees it (the perturbation, the balancer, clipping). A pass with an inf or NaN gradient skips the
whole step and multiplies S by `backoff_factor`; after `growth_interval` finite steps in a row S grows
by `growth_factor`. Under `torch.distributed` the overflow flag is summed over ranks before the decision, so
every rank skips the same steps (a rank skipping alone would leave the others waiting in its all-reduces).
bf16 needs no scale (its exponent range is fp32's). The scale is in `state_dict`.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

from methods._distributed import world_size
from methods._errors import ConfigError

PRECISIONS = ("fp32", "bf16", "fp16")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class NonFiniteGradient(Exception):
    """Raised inside a step when an fp16 pass overflowed: the step is skipped, the scale lowered."""


class Precision:
    """Autocast for `kind` on `device_type`, plus the loss scale when `kind` is fp16."""

    def __init__(self, kind: str, device_type: str, *, init_scale: float = 2.0 ** 16,
                 growth_factor: float = 2.0, backoff_factor: float = 0.5, growth_interval: int = 2000) -> None:
        if kind not in PRECISIONS:
            raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}; got {kind!r}")
        self.kind = kind
        self.device_type = device_type
        self.scale = init_scale if kind == "fp16" else 1.0
        self.growth_factor = growth_factor
        self.backoff_factor = backoff_factor
        self.growth_interval = growth_interval
        self.good_steps = 0  # finite steps since the scale last changed
        self.skipped_steps = 0

    @property
    def scaling(self) -> bool:
        """Whether losses are scaled (fp16 only)."""
        return self.kind == "fp16"

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """The autocast region every pass runs in (none for fp32)."""
        if self.kind == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=_DTYPES[self.kind])

    def scaled(self, loss: Tensor) -> Tensor:
        """S · loss (the loss itself unless fp16)."""
        return loss * self.scale if self.scaling else loss

    def unscale_(self, grads: list[Tensor]) -> None:
        """Divide `grads` by S in place; raise NonFiniteGradient if any is inf or NaN on any rank (one host sync)."""
        if not self.scaling or not grads:
            return
        found = torch.zeros(1, device=grads[0].device)
        inv = torch.full((1,), 1.0 / self.scale, device=grads[0].device)
        for device in {g.device for g in grads}:  # the fused check wants one device per call
            on = [g for g in grads if g.device == device]
            here = torch.zeros(1, device=device)
            torch._amp_foreach_non_finite_check_and_unscale_(on, here, inv.to(device))
            found += here.to(found.device)
        if world_size() > 1:  # one decision for every rank: the ranks' all-reduces must stay paired
            dist.all_reduce(found)
        if found.item():
            raise NonFiniteGradient

    def update(self, finite: bool) -> None:
        """After a step: grow S after `growth_interval` finite steps, lower it after a skipped one."""
        if not self.scaling:
            return
        if finite:
            self.good_steps += 1
            if self.good_steps >= self.growth_interval:
                self.scale *= self.growth_factor
                self.good_steps = 0
        else:
            self.scale *= self.backoff_factor
            self.good_steps = 0
            self.skipped_steps += 1

    def state_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "scale": self.scale, "good_steps": self.good_steps,
                "skipped_steps": self.skipped_steps, "growth_interval": self.growth_interval}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("kind", self.kind) != self.kind:
            raise ConfigError(f"state_dict was saved with precision {state['kind']!r}, not {self.kind!r}")
        self.scale = float(state["scale"])
        self.good_steps = int(state["good_steps"])
        self.skipped_steps = int(state["skipped_steps"])
        self.growth_interval = int(state["growth_interval"])
