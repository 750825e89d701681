"""Operator calls per step of every built-in preset against its base, counted with torch.profiler.

    python benchmarks/launches.py [--device auto|cpu|cuda] [--steps 10] [--methods nbar,obar] [--precision fp32]

A step that is a few norms and scalings per parameter can still be slow when each of them is its own
kernel: on a small model the step is launch-bound. This counts, for one step on the `lora_text`
workload (the packaged all-MiniLM-L6-v2 cut to `--layers` layers, LoRA on query/value, batch
`--batch-size` x `--seq-len`, built by `tuner.workloads.create_workload` as a trial builds it), on CUDA
the device activities (kernels, memcpy, memset), and on CPU the aten operators called from outside any
other aten operator: what the dispatcher sees, the proxy for launches (on CPU a foreach operator runs
one kernel per tensor inside it, on CUDA one per chunk of tensors, so it counts once). Each preset gets
its own model (same seed) and default hyperparameters (IRE: warmup 0), takes 3 warm-up steps (kernels,
AdamW state, the first IRE mask) on one fixed batch, and is then profiled over `--steps` steps (a
multiple of K = 10, so IRE's periodic curvature pass counts at its true rate). A line is printed as soon
as a preset is measured: preset, base, ops/step, the base's ops/step and their ratio. Figures are
printed, never asserted.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# This folder holds platform.py, which would shadow the standard library's `platform`: put the repository first.
sys.path[:] = [str(REPO), *(p for p in sys.path if Path(p or ".").resolve() != REPO / "benchmarks")]

import torch
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile

from benchmarks._tools import quiet_stderr, top_level_aten
from methods import build_optimizer, get_method, list_methods
from tuner.names import PRECISIONS
from tuner.workloads import create_workload


def count_ops(step: Callable[[], object], steps: int, device: torch.device) -> float:
    """Operator calls per call of `step`: device activities on CUDA, top-level aten operators on CPU."""
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with quiet_stderr(), profile(activities=activities) as prof:
        for _ in range(steps):
            step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    events = prof.events()
    if device.type == "cuda":
        n = sum(1 for e in events if e.device_type == DeviceType.CUDA)
    else:
        n = sum(1 for e in events if top_level_aten(e))
    return n / steps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="auto (cuda when available), cpu or cuda")
    parser.add_argument("--steps", type=int, default=10, help="profiled steps per preset (a multiple of K = 10)")
    parser.add_argument("--methods", default=None, help="comma-separated presets (default: every built-in one)")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=32)
    parser.add_argument("--layers", type=int, default=2)
    args = parser.parse_args(argv)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                          else "cpu" if args.device == "auto" else args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("launches: no CUDA device (torch.cuda.is_available() is False)", file=sys.stderr)
        return 1
    builtin = [info.name for info in list_methods() if not info.plugin]  # plug-in comparators take no precision
    names = args.methods.split(",") if args.methods else builtin
    options = {"batch_size": args.batch_size, "max_seq_len": args.seq_len, "layers": args.layers}
    what = "CUDA kernels/memcpy/memset" if device.type == "cuda" else "top-level aten ops (CPU proxy)"
    print(f"{torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'}, torch {torch.__version__}, "
          f"lora_text {args.layers} layers, batch {args.batch_size} x {args.seq_len}, {args.precision}; "
          f"{what} per step over {args.steps} steps", flush=True)
    print(f"{'method':10s} {'base':6s} {'ops/step':>9s} {'base ops':>9s} {'x base':>7s}", flush=True)

    measured: dict[str, float] = {}

    def measure(name: str) -> float:
        if name not in measured:
            workload = create_workload("lora_text", options, seed=0, device=device)
            hp = {"warmup": 0} if get_method(name).preset.ire else {}
            opt = build_optimizer(workload.model, name, precision=args.precision, **hp)
            closure = workload.closure(workload.next_batch())  # one fixed batch: count the step, not the data
            for _ in range(3):
                opt.step(closure)
            measured[name] = count_ops(lambda: opt.step(closure), args.steps, device)
        return measured[name]

    for name in names:
        base = get_method(name).default_base
        base_ops, ops = measure(base), measure(name)
        print(f"{name:10s} {base:6s} {ops:9.1f} {base_ops:9.1f} {ops / base_ops:7.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
