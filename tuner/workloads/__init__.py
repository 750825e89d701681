"""Workloads: what a trial trains. Each is registered by name with validated, typed options.

    from tuner.workloads import resolve_options, create_workload
    opts = resolve_options("lora_text", {"k_shot": 16})        # cheap: for spec validation
    wl = create_workload("lora_text", opts, seed=0, device="auto", num_threads=1)
    loss = opt.step(wl.closure(wl.next_batch()))

Your own workload: subclass `Workload` (the contract is its docstring) or, for a model, a loss and
two datasets, `DatasetWorkload`; give typed options with `option(...)`; name it in a spec by import
target (`workload: {name: "my_tasks.py:MyTask"}`); check it with `tuner validate SPEC --deep`
(`tuner.workloads.conformance`).
"""

from tuner.workloads import (  # noqa: F401  (register)
    hf_causal_lm,
    hf_text_classification,
    image_classification,
    lora_text,
    mnist_mlp,
    scale_invariant,
    tiny_lm,
    valley2d,
)
from tuner.workloads._base import NoOptions, Workload
from tuner.workloads._compile import compile_model, compile_problem
from tuner.workloads._data import BatchSampler, generator, to_device
from tuner.workloads._dataset import DatasetWorkload
from tuner.workloads._options import WorkloadError, option
from tuner.workloads._registry import (
    WorkloadInfo,
    create_workload,
    get_workload,
    list_workloads,
    register,
    resolve_options,
)
from tuner.workloads._target import absolute_target, is_target, load_target, runtime_env

__all__ = [
    "BatchSampler",
    "DatasetWorkload",
    "NoOptions",
    "Workload",
    "WorkloadError",
    "WorkloadInfo",
    "absolute_target",
    "compile_model",
    "compile_problem",
    "create_workload",
    "generator",
    "get_workload",
    "is_target",
    "list_workloads",
    "load_target",
    "option",
    "register",
    "resolve_options",
    "runtime_env",
    "to_device",
]
