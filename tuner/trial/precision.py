"""Mixed precision of a trial (`precision: fp32 | bf16 | fp16` in the spec, `tuner.names.PRECISIONS`).

Autocast is applied once per pass, by whoever runs it. The training passes are the optimizer's: it runs
the closure itself (two or three times a step), so `build_optimizer(..., precision=)` autocasts each pass
and, for fp16, scales its loss (a `GradScaler` cannot reach the gradients the optimizer takes itself:
SAM's second pass, the balancers' norms). Evaluation is the trainer's (`autocast`). The weights, the
optimizer state and the loss reductions stay in float32; bf16 needs no scaling (float32's exponent range).
`methods` and the tuner ship together, so `build_optimizer` always takes `precision=`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch

from tuner.errors import UserError
from tuner.names import PRECISIONS

_REDUCED = {"bf16": torch.bfloat16, "fp16": torch.float16}
DTYPES: dict[str, torch.dtype | None] = {name: _REDUCED.get(name) for name in PRECISIONS}  # fp32: None


def optimizer_kwargs(precision: str) -> dict[str, Any]:
    """What `build_optimizer` gets for `precision`: nothing for fp32 (a plug-in method takes only that)."""
    return {} if precision == "fp32" else {"precision": precision}


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
