"""What a 2-worker data-parallel trial costs against a 1-worker trial at the same global batch, on CPU (gloo).

    python benchmarks/data_parallel.py [--quick] [--methods sgd,sam,sam:local] [--set width=512]

The trial's step (issue 34): the mnist_mlp workload on `digits` (no download) built by `create_workload`, the
optimizer by `build_optimizer`, each worker keeping its shard of every global batch through the trainable's own
`tuner.trial.data_parallel.shard_batches`, and `optimizer.step(workload.closure(batch))` as the Trainer calls
it. Two processes started by `torch.multiprocessing` (spawn) join one gloo process group, as Ray Train's
workers do; Ray Train's start of a trial (seconds, once per trial) is not a step cost and is not timed here.

Three runs of every method are interleaved, round by round, in the one process group:
- `1 worker`: rank 0 alone at the global batch (`methods/_distributed.world_size` read as 1), rank 1 waiting;
- `2 workers`: both ranks on their halves, every gradient pass all-reduced (`methods/_distributed.average_`);
- `2, no comm`: the same with the all-reduce stubbed out (each rank then trains on its own shard: the step's
  arithmetic without the communication).
A window's time is the slower rank's; figures are medians over rounds. The communication share is printed
two ways: the time spent inside `all_reduce` over the step time (it includes waiting for the other rank), and
1 - (no-comm step time / step time). One torch thread per worker, so 2 workers use 2 cores. Nothing is
asserted; on a shared machine the figures move from run to run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
# This folder holds platform.py, which would shadow the standard library's `platform` (torch imports it)
# while the folder is first on sys.path, as it is for `python benchmarks/x.py`: put the repository there instead.
sys.path[:] = [str(REPO), *(p for p in sys.path if Path(p or ".").resolve() != REPO / "benchmarks")]

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from benchmarks._tools import parse_sets
from methods import _distributed, build_optimizer
from tuner.trial.data_parallel import shard_batches
from tuner.workloads import create_workload

WORLD = 2
OPTIONS = {"dataset": "digits", "depth": 2, "width": 512, "batch_size": 128}
MODES = ("1 worker", "2 workers", "2, no comm")


class _TimedDist:
    """`torch.distributed` as `methods/_distributed` sees it, with `all_reduce` timed and counted, or stubbed."""

    def __init__(self) -> None:
        self.stub = False
        self.calls = 0
        self.seconds = 0.0

    def __getattr__(self, name: str) -> Any:
        return getattr(dist, name)

    def all_reduce(self, tensor: torch.Tensor, *args: Any, **kwargs: Any) -> None:
        self.calls += 1
        if self.stub:
            return
        begin = time.perf_counter()
        dist.all_reduce(tensor, *args, **kwargs)
        self.seconds += time.perf_counter() - begin


@contextmanager
def _solo() -> Iterator[None]:
    """This process as one worker: `methods/` averages nothing."""
    saved = _distributed.world_size
    _distributed.world_size = lambda: 1
    try:
        yield
    finally:
        _distributed.world_size = saved


def parse_method(item: str) -> tuple[str, dict[str, Any]]:
    """`sam` or `sam:local` (its `perturb_sync`) -> (method, hyperparameters)."""
    method, _, sync = item.partition(":")
    return method, ({"perturb_sync": sync} if sync else {})


def _build(item: str, options: dict[str, Any], rank: int | None) -> tuple[Any, Any]:
    workload = create_workload("mnist_mlp", options, seed=0, device="cpu", num_threads=1)
    if rank is not None:
        shard_batches(workload, rank, WORLD)
    method, hparams = parse_method(item)
    return workload, build_optimizer(workload.model, method, lr=0.01, **hparams)


def _window(workload: Any, optimizer: Any, steps: int) -> float:
    begin = time.perf_counter()
    for _ in range(steps):
        optimizer.step(workload.closure(workload.next_batch()))
    return time.perf_counter() - begin


def _slowest(seconds: float) -> float:
    value = torch.tensor([seconds], dtype=torch.float64)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return float(value)


def _worker(rank: int, folder: str, items: list[str], options: dict[str, Any], rounds: int, steps: int) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{folder}/rendezvous", rank=rank, world_size=WORLD)
    timed = _TimedDist()
    _distributed.dist = timed
    times: dict[tuple[str, str], list[float]] = {}
    comm: dict[str, list[float]] = {}
    calls: dict[str, float] = {}
    runs = {item: {mode: _build(item, options, None if mode == MODES[0] else rank) for mode in MODES}
            for item in items}
    for round_ in range(rounds + 1):  # round 0 warms up
        for item in items:
            for mode in MODES:
                workload, optimizer = runs[item][mode]
                dist.barrier()
                if mode == MODES[0]:
                    with _solo():
                        seconds = _window(workload, optimizer, steps) if rank == 0 else 0.0
                else:
                    timed.stub, timed.calls, timed.seconds = mode == MODES[2], 0, 0.0
                    seconds = _window(workload, optimizer, steps)
                    if mode == MODES[1]:
                        calls[item] = timed.calls / steps
                        if round_:
                            comm.setdefault(item, []).append(timed.seconds / seconds)
                seconds = _slowest(seconds)
                if round_:
                    times.setdefault((item, mode), []).append(seconds / steps)
    if rank == 0:  # the parent prints
        figures = {"times": [[*key, value] for key, value in times.items()], "comm": comm, "calls": calls}
        Path(folder, "figures.json").write_text(json.dumps(figures))
    # both ranks leave together: a rank that tears the group down while its peer is still in the last
    # collective aborts at exit about one run in six here (gloo: "terminate called without an active exception")
    dist.barrier()
    dist.destroy_process_group()


def _print(items: list[str], times: dict[tuple[str, str], list[float]], comm: dict[str, list[float]],
           calls: dict[str, float], options: dict[str, Any], rounds: int, steps: int) -> None:
    params = sum(p.numel() for p in create_workload("mnist_mlp", options, seed=0, device="cpu").model.parameters())
    print(f"data_parallel: mnist_mlp {options}, {params / 1e3:.0f}k parameters; global batch {options['batch_size']},"
          f" {WORLD} gloo workers on CPU, 1 thread each; median of {rounds} rounds of {steps} steps")
    print(f"{'method':<12}{'1 worker':>10}{'2 workers':>11}{'speedup':>9}{'2, no comm':>12}"
          f"{'all-reduces':>13}{'in all_reduce':>15}{'1 - nocomm/2w':>15}")
    print(f"{'':<12}{'steps/s':>10}{'steps/s':>11}{'':>9}{'steps/s':>12}{'per step':>13}{'% of step':>15}"
          f"{'% of step':>15}")
    for item in items:
        one, two, free = (statistics.median(times[(item, mode)]) for mode in MODES)
        print(f"{item:<12}{1 / one:>10.1f}{1 / two:>11.1f}{one / two:>8.2f}x{1 / free:>12.1f}"
              f"{calls[item]:>13.0f}{100 * statistics.median(comm[item]):>14.0f}%{100 * (1 - free / two):>14.0f}%")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="2 rounds of 10 steps (a smoke run, seconds)")
    parser.add_argument("--methods", default="sgd,sam,sam:local",
                        help="comma-separated; METHOD:local sets perturb_sync local")
    parser.add_argument("--rounds", type=int, default=None, help="timed rounds (default 5; --quick 2)")
    parser.add_argument("--steps", type=int, default=None, help="steps per window (default 50; --quick 10)")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="a mnist_mlp option (default dataset=digits depth=2 width=512 batch_size=128)")
    args = parser.parse_args(argv)
    options = {**OPTIONS, **parse_sets(args.sets, "data_parallel")}
    if options["batch_size"] % WORLD:
        raise SystemExit(f"data_parallel: batch_size={options['batch_size']} does not split into {WORLD} shards")
    rounds = args.rounds or (2 if args.quick else 5)
    steps = args.steps or (10 if args.quick else 50)
    items = [m.strip() for m in args.methods.split(",") if m.strip()]
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="sharptune-dp-") as folder:
        # spawn, not fork: a child forked after the parent ran torch's OpenMP pool can hang in its first op
        mp.start_processes(_worker, args=(folder, items, options, rounds, steps), nprocs=WORLD, join=True,
                           start_method="spawn")
        figures = json.loads(Path(folder, "figures.json").read_text())
    times = {(item, mode): values for item, mode, values in figures["times"]}
    _print(items, times, figures["comm"], figures["calls"], options, rounds, steps)
    print(f"total wall time {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
