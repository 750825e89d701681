"""Every built-in preset on one workload, on CUDA: step time over its base optimizer's, host syncs, kernels, memory.

    python benchmarks/gpu_check.py                  # bar.yaml's workload (lora_text), bf16; sized for <= 1 min, H200
    python benchmarks/gpu_check.py --trainer        # through Trainer's step path: fresh batches, its host syncs
    python benchmarks/gpu_check.py --compile        # the model under torch.compile (`workload.compile: true`)
    python benchmarks/gpu_check.py --workload tiny_lm --set n_layer=24 --set d_model=1024 --set n_head=16 \\
        --set seq_len=512 --set batch_size=8        # compute-bound: a GPT-2-medium-sized model
    python benchmarks/gpu_check.py --workload image_classification --set dataset=cifar10 --set root=/data/cifar \
        --set model=wrn-16-8 --set batch_size=128   # compute-bound: SAM's x base on WRN-16-8 (limit 2.05)
    python benchmarks/gpu_check.py --device cpu --steps 2 --rounds 1   # a smoke check: does it run at all

The workload defaults to `search_spaces/bar.yaml`'s (`lora_text` with that spec's options); `--set KEY=VALUE`
(repeatable, VALUE read as YAML: `null`, `64`, `[query, value]`) changes options, and `--workload` picks
another (bar's options then do not apply). It is built with `tuner.workloads.create_workload` as a trial
builds it (seed 0), so each preset starts from the same weights. Each built-in preset (plug-ins take no
`precision`) gets default hyperparameters and the optimizer's `--precision` (every pass autocast; fp16
adds the optimizer's loss scaling); IRE presets get `warmup: 0` and `ire_interval: K`, and their windows
are a multiple of K steps so that each holds its curvature estimates. Presets that act on LoRA pairs
are skipped, with a note, on a workload without pairs.

It prints a header at once, then one line per preset as soon as that preset is measured:

- `ms/step`, `base ms`: median over the rounds of the mean step time in a window. Each base optimizer
  (`sgd`, `adamw`) is built and warmed up once and kept; each round times a window of the preset and a
  window of its base back to back (the order alternating), and `x base` is the median over the rounds of
  preset / base in the same round. A base's own line times a second instance of it: its `x base` shows
  the noise of the measurement.
- `limit`: grad evals per step of the preset over its base's: what `x base` would be if a step cost its
  gradients and nothing else.
- `syncs/step`: host syncs, counted with `torch.cuda.set_sync_debug_mode("warn")` (torch warns "called a
  synchronizing CUDA operation" at each `.item()`, `.cpu()`, blocking copy, `nonzero`, ...; not at
  `torch.cuda.synchronize()`); `--sync-sites` lists where they happen. `-` off CUDA.
- `kernels/step`: device kernels in `torch.profiler` (CUDA activity, memcpy and memset left out); on CPU
  the column is `aten ops/step`, the aten ops called from outside any other (what the dispatcher sees),
  as a proxy.
- `peak MiB`: torch.cuda.max_memory_allocated during one step, less what was allocated before the preset
  was built (the bases): its model, state and step. `-` off CUDA.

Syncs, kernels and memory come from separate, untimed steps. By default each step reuses one fixed batch
(`opt.step(closure)`: it times the optimizer); `--trainer` runs `tuner.trial.trainer.Trainer`'s step path
instead (`_one_step()`: a fresh batch from the workload, autocast, the device-timed step, then
`_non_finite(loss, read=False)`, the loop's finiteness check between reports), so the batch path's host
syncs show. `--compile` compiles each preset's model as `workload.compile: true` does
(`tuner.workloads.compile_model`); the warm-up steps then include the compilation, so give it more
(`--warmup 5`) on a workload whose batch length varies. After each preset its model and optimizer are freed
(and `torch.cuda.empty_cache()`). Figures are printed, never asserted. Without CUDA (and no `--device cpu`)
it exits with status 1 and one line. With `--device cpu` it is a smoke check: 1 warm-up step, 1 counted step
and K at most `--steps` unless given. The total wall time ends the output.
"""

from __future__ import annotations

import argparse
import gc
import math
import statistics
import sys
import time
import warnings
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

START = time.perf_counter()
REPO = Path(__file__).resolve().parents[1]
# This folder holds platform.py, which would shadow the standard library's `platform`: put the repository first.
sys.path[:] = [str(REPO), *(p for p in sys.path if Path(p or ".").resolve() != REPO / "benchmarks")]

import torch
import yaml

from benchmarks._tools import parse_sets, quiet_stderr, top_level_aten
from methods import HPARAMS, build_optimizer, get_method, list_methods
from tuner.names import PRECISIONS
from tuner.trial.trainer import Trainer
from tuner.workloads import compile_model, create_workload, resolve_options

BAR = REPO / "search_spaces" / "bar.yaml"
SYNC_MESSAGE = "called a synchronizing CUDA operation"  # torch's warning (c10/cuda/CUDAFunctions.cpp)
NO_FIGURE = "-"
IRE_K = int(HPARAMS["ire_interval"].default)  # the presets' K


@dataclass
class Run:
    """One preset's workload and optimizer, warmed up, with the figures of its untimed steps."""

    name: str
    workload: Any
    optimizer: Any
    step: Callable[[], None]
    window: int  # steps per timed window (a multiple of K for IRE presets)
    hparams: dict[str, Any]
    count_steps: int = 0  # steps the sync and kernel counts ran
    syncs: float | None = None
    sites: Counter[str] | None = None
    kernels: float | None = None
    peak_mib: float | None = None


# ------------------------------------------------------------------ options
def bar_workload() -> tuple[str, dict[str, Any]]:
    """(workload name, options) of search_spaces/bar.yaml."""
    workload = yaml.safe_load(BAR.read_text())["workload"]
    return str(workload["name"]), dict(workload.get("options") or {})


def workload_options(name: str, sets: Mapping[str, Any]) -> dict[str, Any]:
    """bar.yaml's options when `name` is its workload, then `sets` on top."""
    bar_name, bar_options = bar_workload()
    return {**(bar_options if name == bar_name else {}), **sets}


def presets(chosen: str | None) -> list[str]:
    """The built-in presets (plug-in comparators take no precision), or the comma-separated `chosen`."""
    return chosen.split(",") if chosen else [info.name for info in list_methods() if not info.plugin]


def rounded_up(steps: int, every: int) -> int:
    """The smallest multiple of `every` that is at least `steps`."""
    return max(1, math.ceil(steps / every)) * every


def preset_hparams(name: str, ire_interval: int) -> dict[str, Any]:
    """IRE presets: no warm-up (the curvature pass is timed) and the interval K."""
    return {"warmup": 0, "ire_interval": ire_interval} if get_method(name).preset.ire else {}


def grad_eval_limit(name: str, hparams: Mapping[str, Any]) -> float:
    """Grad evals per step of `name` over its base's."""
    info = get_method(name)
    return info.grad_evals_per_step(**hparams) / get_method(info.default_base).grad_evals_per_step()


# ------------------------------------------------------------------ device helpers
def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def allocated(device: torch.device) -> int:
    if device.type != "cuda":
        return 0
    torch.cuda.synchronize(device)
    return torch.cuda.memory_allocated(device)


def free_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


# ------------------------------------------------------------------ building a run
def stepper(workload: Any, optimizer: Any, trainer_path: bool, precision: str) -> Callable[[], None]:
    """One step: the optimizer on one fixed batch, or Trainer's step path on fresh batches."""
    if not trainer_path:
        closure = workload.closure(workload.next_batch())  # one fixed batch: time the step, not the data

        def fixed() -> None:
            optimizer.step(closure)
        return fixed
    trainer = Trainer(workload, optimizer, eval_every=10 ** 9, max_steps=10 ** 9, precision=precision)

    def through_trainer() -> None:
        loss = trainer._one_step()
        trainer._non_finite(loss, read=False)
        if len(trainer._events) >= 64 or len(trainer._times) >= 64:
            trainer._events, trainer._times = [], []  # never read: keep the lists short
    return through_trainer


def build_run(name: str, args: argparse.Namespace, device: torch.device) -> Run:
    """The preset's own workload and optimizer, warmed up (kernels, optimizer state, the first IRE mask)."""
    workload = create_workload(args.workload, args.options, seed=0, device=device, num_threads=args.threads)
    if args.compile:
        compile_model(workload)
    hparams = preset_hparams(name, args.ire_interval)
    optimizer = build_optimizer(workload.model, name, pairs=workload.pairs or None, precision=args.precision,
                                **hparams)
    step = stepper(workload, optimizer, args.trainer, args.precision)
    for _ in range(args.warmup):
        step()
    window = rounded_up(args.steps, args.ire_interval) if hparams else args.steps
    return Run(name, workload, optimizer, step, window, hparams)


# ------------------------------------------------------------------ untimed figures
def count_syncs(run: Run, steps: int, device: torch.device) -> tuple[float | None, Counter[str] | None]:
    """Host syncs per step (and where, file:line) under the sync debug mode; (None, None) off CUDA."""
    if device.type != "cuda":
        return None, None
    torch.cuda.synchronize(device)
    previous = torch.cuda.get_sync_debug_mode()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            for _ in range(steps):
                run.step()
        finally:
            torch.cuda.set_sync_debug_mode(previous)
    hits = [w for w in caught if SYNC_MESSAGE in str(w.message)]
    return len(hits) / steps, Counter(f"{Path(w.filename).name}:{w.lineno}" for w in hits)


def count_kernels(run: Run, steps: int, device: torch.device) -> float:
    """Device kernels per step (CUDA); top-level aten ops per step on CPU."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    cuda = device.type == "cuda"
    with quiet_stderr(), profile(activities=[ProfilerActivity.CUDA if cuda else ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            run.step()
        sync(device)
    if cuda:
        count = sum(1 for e in prof.events() if e.device_type == DeviceType.CUDA
                    and not e.name.startswith(("Memcpy", "Memset")))
    else:
        count = sum(1 for e in prof.events() if top_level_aten(e))
    return count / steps


def peak_mib(run: Run, before: int, device: torch.device) -> float | None:
    """Peak MiB during one step above `before` (what was allocated before the preset was built)."""
    if device.type != "cuda":
        run.step()
        return None
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    run.step()
    torch.cuda.synchronize(device)
    return (torch.cuda.max_memory_allocated(device) - before) / 2 ** 20


def untimed_figures(run: Run, before: int, args: argparse.Namespace, device: torch.device) -> None:
    run.count_steps = rounded_up(args.count_steps, args.ire_interval) if run.hparams else args.count_steps
    run.syncs, run.sites = count_syncs(run, run.count_steps, device)
    run.kernels = count_kernels(run, run.count_steps, device)
    run.peak_mib = peak_mib(run, before, device)


# ------------------------------------------------------------------ timing
def window_s(run: Run, steps: int, device: torch.device) -> float:
    """Seconds per step over `steps` steps."""
    sync(device)
    begin = time.perf_counter()
    for _ in range(steps):
        run.step()
    sync(device)
    return (time.perf_counter() - begin) / steps


def interleaved(run: Run, base: Run, rounds: int, device: torch.device) -> tuple[list[float], list[float]]:
    """Per round: (preset, base) seconds per step over windows of the preset's length, back to back."""
    mine, theirs = [], []
    for r in range(rounds):
        if r % 2:
            theirs.append(window_s(base, run.window, device))
            mine.append(window_s(run, run.window, device))
        else:
            mine.append(window_s(run, run.window, device))
            theirs.append(window_s(base, run.window, device))
    return mine, theirs


# ------------------------------------------------------------------ output
def header(args: argparse.Namespace, device: torch.device) -> str:
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU (smoke check: no syncs, no memory)"
    path = "Trainer step path, fresh batches" if args.trainer else "fixed batch"
    path += ", torch.compile" if args.compile else ""
    return (f"gpu_check: {where}, torch {torch.__version__}; {args.workload} {args.resolved}; precision "
            f"{args.precision}; {path}; {args.rounds} rounds x {args.steps} steps after {args.warmup} warm-up "
            f"(IRE: K = {args.ire_interval}, windows of {rounded_up(args.steps, args.ire_interval)})")


def columns(device: torch.device) -> str:
    kernels = "kernels/step" if device.type == "cuda" else "aten ops/step"
    return (f"{'method':10s} {'base':6s} {'ms/step':>9s} {'base ms':>9s} {'x base':>7s} {'limit':>6s} "
            f"{'syncs/step':>10s} {kernels:>13s} {'peak MiB':>9s}")


def figure(value: float | None, width: int, digits: int) -> str:
    return f"{NO_FIGURE:>{width}s}" if value is None else f"{value:{width}.{digits}f}"


def line(run: Run, base: Run, mine: list[float], theirs: list[float]) -> str:
    ratio = statistics.median(t / b for t, b in zip(mine, theirs, strict=True))
    return (f"{run.name:10s} {base.name:6s} {1e3 * statistics.median(mine):9.2f} "
            f"{1e3 * statistics.median(theirs):9.2f} {ratio:7.2f} {grad_eval_limit(run.name, run.hparams):6.2f} "
            f"{figure(run.syncs, 10, 1)} {figure(run.kernels, 13, 0)} {figure(run.peak_mib, 9, 1)}")


def site_lines(run: Run) -> list[str]:
    if not run.sites:
        return []
    return [f"    {run.name}: {n / run.count_steps:.1f}/step at {site}" for site, n in run.sites.most_common(8)]


# ------------------------------------------------------------------ main
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    bar_name, _ = bar_workload()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", default=bar_name, help=f"a registered workload (default {bar_name}, bar.yaml's)")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="a workload option, VALUE as YAML (repeatable)")
    parser.add_argument("--steps", type=int, default=10, help="steps per timed window (IRE: rounded up to K)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps after the build (3; CPU: 1)")
    parser.add_argument("--count-steps", type=int, default=None,
                        help="steps for the sync and kernel counts (3; CPU: 1), IRE: rounded up to K")
    parser.add_argument("--ire-interval", type=int, default=None,
                        help=f"IRE's K (default {IRE_K}, the preset's; CPU: at most --steps, to keep it short)")
    parser.add_argument("--precision", choices=PRECISIONS, default="bf16")
    parser.add_argument("--methods", default=None, help="comma-separated presets (default: every built-in)")
    parser.add_argument("--trainer", action="store_true", help="step through Trainer._one_step (fresh batches)")
    parser.add_argument("--compile", action="store_true", help="the model under torch.compile (workload.compile)")
    parser.add_argument("--sync-sites", action="store_true", help="print where the host syncs happen")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--device", default="cuda", help="cuda[:N]; cpu only checks that the script runs")
    args = parser.parse_args(argv)
    small = torch.device(args.device).type == "cpu"  # a smoke check: as few steps as show that it runs
    args.warmup = (1 if small else 3) if args.warmup is None else args.warmup
    args.count_steps = (1 if small else 3) if args.count_steps is None else args.count_steps
    if args.ire_interval is None:
        args.ire_interval = min(IRE_K, args.steps) if small else IRE_K
    if min(args.steps, args.rounds, args.count_steps, args.ire_interval) < 1 or args.warmup < 0:
        parser.error("--steps, --rounds, --count-steps and --ire-interval must be >= 1, --warmup >= 0")
    args.options = workload_options(args.workload, parse_sets(args.sets, "gpu_check"))
    return args


def measure(name: str, args: argparse.Namespace, device: torch.device, bases: dict[str, Run],
            pairs: dict[str, bool]) -> list[str]:
    """The printed lines of one preset (building its base on first use); the preset is freed after."""
    info = get_method(name)
    if info.default_base not in bases:
        before = allocated(device)
        base = build_run(info.default_base, args, device)
        untimed_figures(base, before, args, device)
        bases[info.default_base] = base
        pairs[args.workload] = bool(base.workload.pairs)
    if info.needs_pairs and not pairs[args.workload]:
        return [f"{name:10s} skipped: it acts on LoRA pairs and {args.workload} has none"]
    before = allocated(device)
    run = build_run(name, args, device)
    try:
        untimed_figures(run, before, args, device)
        mine, theirs = interleaved(run, bases[info.default_base], args.rounds, device)
        return [line(run, bases[info.default_base], mine, theirs), *(site_lines(run) if args.sync_sites else [])]
    finally:
        del run
        free_memory(device)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("gpu_check: no CUDA device (torch.cuda.is_available() is False); run it on a GPU machine, "
              "or pass --device cpu for a smoke check", file=sys.stderr)
        return 1
    args.resolved = resolve_options(args.workload, args.options)
    print(header(args, device), flush=True)
    print(columns(device), flush=True)
    bases: dict[str, Run] = {}
    pairs: dict[str, bool] = {}
    failed = 0
    for name in presets(args.methods):
        try:
            lines = measure(name, args, device, bases, pairs)
        except Exception as exc:  # one preset's failure (out of memory, say) must not cost the others
            failed += 1
            lines = [f"{name:10s} failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"]
            free_memory(device)
        for text in lines:
            print(text, flush=True)
    print(f"total wall time {time.perf_counter() - START:.1f} s (imports included)", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
