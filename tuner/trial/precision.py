"""Mixed precision of a trial (`precision: fp32 | bf16 | fp16` in the spec), one definition for the
trainer and the preflight.

The workload's closure and its evaluation run under `torch.autocast(device.type, dtype)`; the
weights, the optimizer state and the loss reductions stay in float32. fp16 also needs dynamic loss
scaling, and a `GradScaler` cannot reach gradients the optimizer takes itself (SAM's second pass,
the balancers' norms): the optimizer scales each pass, so `build_optimizer` gets `precision=`
whenever it is not fp32. bf16 needs no scaling (float32's exponent range).
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Iterator
from typing import Any

import torch

from methods import build_optimizer
from tuner.errors import UserError

DTYPES: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def optimizer_takes_precision() -> bool:
    """Whether this version's `build_optimizer` takes `precision=` (loss scaling inside the optimizer)."""
    return "precision" in inspect.signature(build_optimizer).parameters


def optimizer_kwargs(precision: str) -> dict[str, Any]:
    """What `build_optimizer` gets for `precision`: nothing for fp32 (and for bf16 where it cannot take it)."""
    if precision == "fp32":
        return {}
    if optimizer_takes_precision():
        return {"precision": precision}
    if precision == "fp16":
        raise UserError("precision fp16 needs loss scaling inside the optimizer (build_optimizer(precision=...)), "
                        "which this version of methods lacks (allowed here: fp32, bf16)")
    return {}  # bf16 keeps float32's range: no scaling to do


def check_device(precision: str, device: torch.device) -> None:
    """fp16 trains only on CUDA (loss scaling is a GPU matter; CPU autocast in fp16 is slow and unscaled)."""
    if precision == "fp16" and device.type != "cuda":
        raise UserError(f"precision fp16 needs a CUDA device, this trial runs on {device.type} "
                        "(allowed on a CPU: fp32, bf16)")


@contextlib.contextmanager
def autocast(device: torch.device, precision: str) -> Iterator[None]:
    """`torch.autocast` in `precision`'s dtype on `device`; nothing for fp32."""
    dtype = DTYPES[precision]
    if dtype is None:
        yield
        return
    with torch.autocast(device.type, dtype=dtype):
        yield


def autocast_closure(closure: Callable[[], Any], device: torch.device, precision: str) -> Callable[[], Any]:
    """The closure run under autocast each time the optimizer calls it (the optimizer's backward is outside)."""
    if DTYPES[precision] is None:
        return closure

    def run() -> Any:
        with autocast(device, precision):
            return closure()
    return run
