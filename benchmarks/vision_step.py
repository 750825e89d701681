"""Where an `image_classification` step's time goes: the data (gather, crop, flip, normalise) or the model.

    python benchmarks/vision_step.py                                  # the small CNN on Fashion-MNIST, CPU, 1 thread
    python benchmarks/vision_step.py --set model=resnet20 --steps 20
    python benchmarks/vision_step.py --set dataset=cifar10 --set root=~/data --set model=wrn-16-8 --device cuda

It builds the workload as a trial does (seed 0, `--set KEY=VALUE` options, VALUE as YAML) and times, over
`--steps` steps after `--warmup`, the batch path (`next_batch`: indices and draws on the host, one copy,
the gather and the augmentation on the device) apart from the optimizer's step on that batch (forward,
backward, update; `--method`, default sgd). On CUDA each part ends with a synchronize, so the split is of
device time too. It prints ms per step of each part and the data's share. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# This folder holds platform.py, which would shadow the standard library's `platform`: put the repository first.
sys.path[:] = [str(REPO), *(p for p in sys.path if Path(p or ".").resolve() != REPO / "benchmarks")]

import torch

from benchmarks._tools import parse_sets
from methods import build_optimizer
from tuner.workloads import create_workload, resolve_options


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--method", default="sgd")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (a trial's default: 1)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    options = resolve_options("image_classification", parse_sets(args.sets, "vision_step"))
    device = torch.device(args.device)
    workload = create_workload("image_classification", options, seed=0, device=device, num_threads=args.threads)
    optimizer = build_optimizer(workload.model, args.method, lr=0.05)
    data, model = [], []
    for i in range(args.warmup + args.steps):
        sync(device)
        begin = time.perf_counter()
        batch = workload.next_batch()
        sync(device)
        middle = time.perf_counter()
        optimizer.step(workload.closure(batch))
        sync(device)
        end = time.perf_counter()
        if i >= args.warmup:
            data.append(middle - begin)
            model.append(end - middle)
    d, m = 1e3 * statistics.median(data), 1e3 * statistics.median(model)
    print(f"vision_step: {options['dataset']} {options['model']} batch {options['batch_size']} augment "
          f"{options['augment']} cutout {options['cutout']}; {args.method} on {device} ({args.threads} thread(s)); "
          f"median of {args.steps} steps")
    print(f"data {d:.2f} ms/step, model {m:.2f} ms/step: the data is {100 * d / (d + m):.1f} % of the step")
    return 0


if __name__ == "__main__":
    sys.exit(main())
