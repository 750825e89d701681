"""`workload.compile: true`: the workload's model under `torch.compile`, for small models on GPUs.

A small model's step on a GPU is bound by Python and kernel launches, not arithmetic; compiling the
forward (and with it the backward) fuses its kernels. The model is compiled in place
(`nn.Module.compile`), so its parameters, its `state_dict` keys and everything the optimizer and the
checkpoints hold stay the same. Every pass the methods take (SAM's second pass, IRE's Fisher pass
through the step's own graph, Functional-SAM's output gradient, the diagnostics' Hessian-vector
products) goes through the compiled module. Batches whose length varies (trimmed padding) compile a
few shapes first, then torch marks the length dynamic.

Where it cannot apply the trial is refused before it starts, with what is missing.
"""

from __future__ import annotations

import shutil
import sys

import torch
from torch import nn

from tuner.workloads._options import WorkloadError

CXX = ("g++", "clang++", "c++")  # what inductor's CPU code generation calls


def compile_problem(device: torch.device) -> str | None:
    """Why `torch.compile` cannot run on `device` here (None: it can)."""
    import torch._dynamo

    if not torch._dynamo.is_dynamo_supported():
        return (f"torch.compile is not supported on Python {sys.version_info.major}.{sys.version_info.minor} "
                f"with torch {torch.__version__}")
    if device.type == "cuda":
        from torch.utils._triton import has_triton

        if not has_triton():
            return "torch.compile on CUDA needs Triton, which is not installed (pip install triton)"
    elif device.type == "cpu" and not any(shutil.which(c) for c in CXX):
        return f"torch.compile on a CPU needs a C++ compiler, and none of {', '.join(CXX)} is on PATH"
    return None


def compile_model(workload: object) -> None:
    """Compile `workload.model` in place, or raise `WorkloadError` naming `workload.compile`."""
    model = getattr(workload, "model", None)
    name = getattr(workload, "name", "") or type(workload).__name__
    if not isinstance(model, nn.Module):
        raise WorkloadError(f"workload.compile: workload {name} has no torch.nn.Module `model` to compile")
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    problem = compile_problem(device)
    if problem:
        raise WorkloadError(f"workload.compile: {problem} (allowed: compile: false)")
    model.compile()


def is_compiled(model: nn.Module) -> bool:
    """Whether `compile_model` compiled `model`."""
    return getattr(model, "_compiled_call_impl", None) is not None
