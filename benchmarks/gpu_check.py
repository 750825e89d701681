"""Every preset on the LoRA workload in bf16 on CUDA: step time relative to its base optimizer, peak memory.

    python benchmarks/gpu_check.py [--steps 30] [--rounds 5] [--batch-size 32] [--seq-len 128] [--precision bf16]
    python benchmarks/gpu_check.py --device cpu --methods sam --steps 1 --rounds 1   # does it run at all

The workload is `lora_text` (the packaged all-MiniLM-L6-v2, LoRA r = 8 on query/value), built with
`tuner.workloads.create_workload` exactly as a trial builds it. Each preset gets its own model
(same seed), default hyperparameters (IRE: warmup 0, so its curvature pass is timed) and the
optimizer's `precision` (every pass autocast; fp16 adds the optimizer's loss scaling). Timing is
interleaved: each round times `--steps` steps of every preset, the order rotating; a preset's ratio
is the median over rounds of its step time over its base's (`sgd` or `adamw`) in the same round.
Peak memory is torch.cuda.max_memory_allocated over one step, the model and its state included.
Figures are printed, never asserted. Without CUDA it exits with status 1 and says so.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# This folder holds platform.py, which would shadow the standard library's `platform`: put the repository first.
sys.path[:] = [str(REPO), *(p for p in sys.path if Path(p or ".").resolve() != REPO / "benchmarks")]

import torch

from methods import build_optimizer, get_method, list_methods
from tuner.workloads import create_workload


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_mib(step: Callable[[], object], device: torch.device) -> float:
    """Peak MiB allocated during one step (model and optimizer state included); NaN off CUDA."""
    if device.type != "cuda":
        step()
        return float("nan")
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    step()
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) / 2 ** 20


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30, help="steps per timed window (a multiple of K = 10)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--precision", choices=("bf16", "fp16", "fp32"), default="bf16")
    parser.add_argument("--methods", default=None, help="comma-separated presets (default: all)")
    parser.add_argument("--device", default="cuda", help="cuda; cpu only checks that the script runs (no memory)")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("gpu_check: no CUDA device (torch.cuda.is_available() is False); run it on a GPU machine",
              file=sys.stderr)
        return 1
    # the built-in presets (plug-in comparators take no precision)
    names = args.methods.split(",") if args.methods else [info.name for info in list_methods() if not info.plugin]
    names = sorted(set(names) | {get_method(n).default_base for n in names})  # every base to compare with
    options = {"batch_size": args.batch_size, "max_seq_len": args.seq_len}

    runs = {}
    for name in names:
        workload = create_workload("lora_text", options, seed=0, device=device)
        hp = {"warmup": 0} if get_method(name).preset.ire else {}
        opt = build_optimizer(workload.model, name, precision=args.precision, **hp)
        closure = workload.closure(workload.next_batch())  # one fixed batch: time the step, not the data
        for _ in range(3):  # warm-up: kernels, AdamW state, the first IRE mask
            opt.step(closure)
        runs[name] = (workload, opt, closure)

    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(args.rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            _, opt, closure = runs[name]
            _sync(device)
            t0 = time.perf_counter()
            for _ in range(args.steps):
                opt.step(closure)
            _sync(device)
            times[name].append((time.perf_counter() - t0) / args.steps)

    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU (no memory figures)"
    print(f"{where}, torch {torch.__version__}, lora_text batch {args.batch_size} x "
          f"{args.seq_len} tokens, precision {args.precision}, {args.rounds} rounds x {args.steps} steps")
    print(f"{'method':10s} {'base':6s} {'ms/step':>8s} {'x base':>7s} {'grad evals':>10s} {'peak MiB':>9s}")
    for name in names:
        _, opt, closure = runs[name]
        base = opt.hparams["base"]
        ratio = statistics.median(t / b for t, b in zip(times[name], times[base], strict=True))
        peak = _peak_mib(lambda o=opt, c=closure: o.step(c), device)
        print(f"{name:10s} {base:6s} {1e3 * statistics.median(times[name]):8.2f} {ratio:7.2f} "
              f"{get_method(name).grad_evals_per_step(**({'warmup': 0} if opt.info.preset.ire else {})):10.2f} "
              f"{peak:9.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
