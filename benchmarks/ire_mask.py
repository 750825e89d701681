"""IRE's mask on p coordinates: the device path (radix selection) against torch.kthvalue over the whole flat tensor.

    python benchmarks/ire_mask.py --device cuda [--big]   # --big adds p = 3.55e8 (a 355M-parameter model)
    python benchmarks/ire_mask.py --device cpu            # the device path forced onto CPU tensors, and the host path

For each p the curvatures are squared normals with a share of exact zeros (`--zeros`, dead units), split into
eight parameters as a model's would be. Each figure is the median ms of `--repeats` calls after one warm-up:
`flat_mask` on the device path for both tie rules (on CPU with `_device.FORCE_ACCELERATOR_PATH`),
`torch.kthvalue(flat, count)` on the concatenated curvatures (what the device path did before), and on CPU
`flat_mask`'s host path (numpy). CUDA timings synchronise before and after each call. Figures are printed,
never asserted.
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

from methods import _device
from methods._selection import flat_mask

SIZES = (1_000_000, 10_000_000)
BIG = 355_000_000
GAMMA = 0.6


def _curvatures(p: int, zeros: float, device: torch.device) -> list[torch.Tensor]:
    """Eight parameters' squared-normal curvatures with a share `zeros` of exact zeros."""
    generator = torch.Generator(device=device).manual_seed(0)
    flat = torch.randn(p, generator=generator, device=device).square_()
    flat.masked_fill_(torch.rand(p, generator=generator, device=device) < zeros, 0.0)
    return list(flat.tensor_split(8))


def _ms(call: Callable[[], object], device: torch.device, repeats: int) -> float:
    """The median wall time of `call` in ms, after one warm-up call."""
    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    call()
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        call()
        sync()
        times.append(1e3 * (time.perf_counter() - start))
    return statistics.median(times)


def _device_path(curvature: list[torch.Tensor], ties: str) -> Callable[[], object]:
    def call() -> object:
        forced, _device.FORCE_ACCELERATOR_PATH = _device.FORCE_ACCELERATOR_PATH, True
        try:
            return flat_mask(curvature, GAMMA, ties=ties)
        finally:
            _device.FORCE_ACCELERATOR_PATH = forced
    return call


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--big", action="store_true", help="add p = 3.55e8 (CUDA only)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--zeros", type=float, default=0.2, help="share of exact-zero curvatures")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("CUDA is not available", file=sys.stderr)
        return 1
    device = torch.device(args.device)
    sizes = SIZES + ((BIG,) if args.big and device.type == "cuda" else ())
    if args.big and device.type != "cuda":
        print(f"--big is for CUDA only: p = {BIG:.3g} skipped on {device}")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu, {torch.get_num_threads()} threads"
    print(f"IRE mask, γ = {GAMMA}, {args.zeros:.0%} zeros, median of {args.repeats}",
          f"({name}, torch {torch.__version__})")
    columns = ["p", "device exact", "device official", "kthvalue"] + (["host exact"] if device.type == "cpu" else [])
    print("".join(f"{c:>17}" for c in columns) + "   (ms)")
    for p in sizes:
        curvature = _curvatures(p, args.zeros, device)
        flat = torch.cat([h.reshape(-1) for h in curvature])
        count = int(GAMMA * p + 0.5)
        row = [_ms(_device_path(curvature, ties), device, args.repeats) for ties in ("exact", "official")]
        row.append(_ms(lambda flat=flat, count=count: torch.kthvalue(flat, count), device, args.repeats))
        if device.type == "cpu":
            row.append(_ms(lambda curvature=curvature: flat_mask(curvature, GAMMA), device, args.repeats))
        print(f"{p:>17.3g}" + "".join(f"{ms:>17.1f}" for ms in row), flush=True)
        del curvature, flat
    return 0


if __name__ == "__main__":
    sys.exit(main())
