"""Workloads: what a trial trains. Each is registered by name with validated, typed options.

    from tuner.workloads import resolve_options, create_workload
    opts = resolve_options("lora_text", {"k_shot": 16})        # cheap: for spec validation
    wl = create_workload("lora_text", opts, seed=0, device="auto", num_threads=1)
    loss = opt.step(wl.closure(wl.next_batch()))
"""

from tuner.workloads import lora_text, mnist_mlp, scale_invariant, tiny_lm, valley2d  # noqa: F401  (register)
from tuner.workloads._base import Workload
from tuner.workloads._options import WorkloadError
from tuner.workloads._registry import (
    WorkloadInfo,
    create_workload,
    get_workload,
    list_workloads,
    register,
    resolve_options,
)

__all__ = [
    "Workload",
    "WorkloadError",
    "WorkloadInfo",
    "create_workload",
    "get_workload",
    "list_workloads",
    "register",
    "resolve_options",
]
