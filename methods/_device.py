"""Where the optimizer step may touch the host: only for tensors on the CPU.

On an accelerator, a step must not copy data to the host or wait on it (no `.cpu()`, `.item()`,
`.tolist()`, `float(t)`), so the code that would (label sampling, mask selection, finiteness) asks
`on_accelerator` which path to take. Tests set `FORCE_ACCELERATOR_PATH` to take the accelerator path
on CPU tensors and count host calls.
"""

from __future__ import annotations

import torch
from torch import Tensor

FORCE_ACCELERATOR_PATH = False  # tests only


def on_accelerator(where: Tensor | torch.device) -> bool:
    """Whether `where` (a tensor or a device) takes the host-free path."""
    device = where.device if isinstance(where, Tensor) else where
    return FORCE_ACCELERATOR_PATH or device.type != "cpu"
