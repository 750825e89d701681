"""Data parallel: average every gradient the method takes itself across ranks.

The method takes its gradients with `torch.autograd.grad`, which DDP's reducer never sees, so without
this each rank would perturb (and balance, and pick IRE's mask) with its own shard's gradient. With
`torch.distributed` initialised, each pass's parameter gradients are all-reduced into their mean, so
every rank takes the step the whole global batch would give (losses being means over equal shards).
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor


def world_size() -> int:
    """Number of ranks when torch.distributed is initialised, else 1."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


def average_(grads: list[Tensor]) -> None:
    """Replace each gradient by its mean over ranks, in place (one all-reduce per dtype and device)."""
    size = world_size()
    if size == 1 or not grads:
        return
    buckets: dict[tuple[torch.dtype, torch.device], list[Tensor]] = {}
    for g in grads:
        buckets.setdefault((g.dtype, g.device), []).append(g)
    for bucket in buckets.values():
        flat = torch.cat([g.reshape(-1) for g in bucket])
        dist.all_reduce(flat)
        flat.div_(size)
        torch._foreach_copy_(bucket, [part.view_as(g) for part, g in
                                      zip(flat.split([g.numel() for g in bucket]), bucket, strict=True)])
