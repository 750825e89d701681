"""Where one trial's time goes, phase by phase: imports, workload construction (tokenisation, model, evaluation
batches), optimizer steps, batches, full and subset evaluations, diagnostics, checkpoints, the rest.

    python benchmarks/trial_time.py [--spec bar.yaml] [--method nbar] [--grad-evals 600] [--set KEY=VALUE ...]
        [--workload NAME] [--device auto] [--precision fp32] [--lr 1e-3] [--legacy] [--project 1200]
    python benchmarks/trial_time.py --set k_shot=null --grad-evals 20     # lora_text on the full training split
    python benchmarks/trial_time.py --set k_shot=null --set layers=6 --set max_seq_len=128 --set batch_size=32 \\
        --method nbar --precision bf16 --grad-evals 1200                 # the GPU trial of 1200 grad evals
    python benchmarks/trial_time.py --experiment [--grad-evals 300] [--samples 6] [--preflight]

The first form runs one trial in this process, without Ray, as `train_trial` runs it: the spec's workload
(`--set KEY=VALUE`, VALUE as YAML, changes its options; `--workload` picks another, without the spec's
options), the hyperparameters through `tuner.hparams.optimizer_hparams` (defaults, `--lr`, the horizon),
the spec's evaluation plan (ASHA's rungs as `trial_setup` derives them, curve and diagnostics points
spread over the budget), `Trainer` with `--precision`, and a `torch.save` of the trainer state at the
scheduler's points and every 60 s. `--legacy` evaluates the full split and checkpoints at every report.

It prints, in seconds: the imports; `create_workload` the first time in the process (cold) and again
(warm: what a trial pays in an actor that already ran one); for a text-classification workload
(`lora_text`, `hf_text_classification`) the pieces of its construction, each timed by calling
`tuner.workloads._hf_text`'s functions on cold caches and again warm: reading the corpus, loading the
tokenizer, tokenising the training rows and the validation rows (`encoded(...)`), loading the pretrained
model (`pretrained`), the trial's copy with its head and LoRA (`build_classifier`, moved to the device),
and the evaluation batches; then the trial's phases (optimizer steps, with their count and ms/step;
`next_batch`; full evaluations, subset evaluations and diagnostics, each with its count; checkpoints;
the remainder: reports, autocast and closure set-up, the loop), the trial share (steps / trial wall;
target >= 0.85) and the same share in process CPU time. `--project N` scales it to a trial of N grad
evals: steps in proportion, evaluations and diagnostics by the count the plan gives at N.

`--experiment` runs `python -m tuner run search_spaces/bar.yaml` (needs Ray and MLflow) with `--samples`
samples of `--grad-evals` grad evals and no confirmation, and prints the experiment share: sum of
cost/train_s over the trials / (wall time of the command x max concurrent trials). Target (issue 25):
>= 0.65 at the shipped 600 grad evals on 2 cores; on a GPU, a bar trial's share >= 0.90. It
also splits the command's wall time into start-up (to the first trial's start), trials, and the end.
"""

from __future__ import annotations

import time

START = time.perf_counter()

import argparse
import math
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
# This folder holds platform.py, which would shadow the standard library's `platform` (torch and ray import it)
# while the folder is first on sys.path, as it is for `python benchmarks/x.py`: put the repository there instead.
sys.path[:] = [str(REPO), *(p for p in sys.path if Path(p or ".").resolve() != REPO / "benchmarks")]

import torch

from benchmarks._tools import parse_sets
from methods import build_optimizer, get_method
from tuner.hparams import optimizer_hparams
from tuner.names import PRECISIONS
from tuner.spec import load_spec
from tuner.spec import trial_setup as trial_setup_of
from tuner.trial.trainer import EvalPlan, Trainer
from tuner.workloads import create_workload

IMPORTS_S = time.perf_counter() - START
CHECKPOINT_S = 60.0  # tuner.trial.trainable.CHECKPOINT_S (that module imports Ray)


# ------------------------------------------------------------------ the trial's settings
@dataclass
class Setup:
    """What one trial gets: workload, method, budget, plan, device, precision."""

    workload: str
    options: dict[str, Any]
    method: str
    hparams: dict[str, Any]
    grad_evals: int
    eval_every: int
    plan: EvalPlan | None
    device: str
    precision: str
    threads: int


def eval_plan(spec: Any) -> EvalPlan:
    """The plan a trial of `spec` gets: `tuner.spec.trial_setup(spec).eval_plan`, the trainable's own."""
    plan = trial_setup_of(spec).eval_plan
    assert plan is not None
    return plan


def trial_setup(args: argparse.Namespace) -> Setup:
    """The spec with `--grad-evals` (eval_every and ASHA's grace period cut to it) and the workload options
    of `--set`; `--workload` replaces its workload."""
    path = REPO / "search_spaces" / args.spec if not Path(args.spec).exists() else Path(args.spec)
    first = load_spec(path)
    budget = [f"budget.trial_grad_evals={args.grad_evals}",
              f"budget.eval_every={min(first.budget.eval_every, args.grad_evals)}"]
    if first.scheduler.grace_period is not None and first.scheduler.grace_period > args.grad_evals:
        budget.append(f"scheduler.grace_period={args.grad_evals}")  # a budget below the first rung: one at the end
    own = args.workload in (None, first.workload.name)
    sets = [f"workload.options.{item}" for item in args.sets] if own else []
    spec = load_spec(path, budget + sets)
    workload = spec.workload.name if own else args.workload
    options = dict(spec.workload.options) if own else parse_sets(args.sets, "trial_time")
    method = args.method or spec.methods[0]
    hparams = optimizer_hparams(method, {"lr": args.lr}, args.grad_evals)
    device = args.device if args.device != "auto" else "cuda" if torch.cuda.is_available() else "cpu"
    return Setup(workload, options, method, hparams, args.grad_evals, spec.budget.eval_every,
                 None if args.legacy else eval_plan(spec), device, args.precision or spec.precision,
                 args.threads or max(1, int(spec.resources.cpu)))


# ------------------------------------------------------------------ timing helpers
@dataclass
class Phases:
    """Seconds and counts per named phase, in the order first seen."""

    seconds: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)

    def add(self, name: str, seconds: float, count: int = 1, note: str = "") -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds
        self.counts[name] = self.counts.get(name, 0) + count
        if note:
            self.notes[name] = note


def sync(device: torch.device | str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


@contextmanager
def timed(phases: Phases, name: str, device: torch.device | str = "cpu", note: str = "") -> Iterator[None]:
    sync(device)
    begin = time.perf_counter()
    yield
    sync(device)
    phases.add(name, time.perf_counter() - begin, note=note)


def counting(phases: Phases, name: str, fn: Callable[..., Any], device: torch.device | str,
             kind: Callable[..., str] | None = None) -> Callable[..., Any]:
    """`fn` timed into `phases[name]` (or `phases[kind(*args, **kwargs)]`) on each call."""
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        with timed(phases, kind(*args, **kwargs) if kind else name, device):
            return fn(*args, **kwargs)
    return wrapped


# ------------------------------------------------------------------ construction
def import_libraries(phases: Phases) -> None:
    """transformers and peft, which a text workload imports on first use (timed apart from the model load)."""
    begin = time.perf_counter()
    try:
        import peft  # noqa: F401
        import transformers  # noqa: F401
    except ImportError:
        return
    phases.add("import transformers, peft", time.perf_counter() - begin)


def clear_text_caches() -> None:
    """Forget the per-process corpus, tokenizer, tokenized rows and pretrained model (a cold start)."""
    from tuner.workloads import _hf_text, _text_data

    _text_data.corpus.cache_clear()
    _text_data.reviews.cache_clear()
    _hf_text.tokenizer.cache_clear()
    _hf_text.pretrained.cache_clear()
    _hf_text._ENCODED.clear()


def trial_rows(workload: Any, corpus: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """(training, validation) indices the workload uses, as `TextClassification.__init__` picks them."""
    from tuner.workloads._data import k_shot

    options, targets, train = workload.options, torch.tensor(corpus.labels), corpus.train
    if options.k_shot is not None:
        train = train[k_shot(targets[train], options.k_shot, corpus.num_labels, workload.seed)]
    val = corpus.val[: options.eval_examples] if options.eval_examples else corpus.val
    return train, val


def text_pieces(workload: Any, phases: Phases, label: str) -> None:
    """The pieces of a text-classification workload's construction, each timed (caches as they are)."""
    from tuner.workloads import _hf_text

    device, options, path = workload.device, workload.options, workload.checkpoint()
    with timed(phases, f"{label}: read the corpus"):
        corpus = workload.corpus()
    with timed(phases, f"{label}: load the tokenizer"):
        _hf_text.tokenizer(path)
    train, val = trial_rows(workload, corpus)
    rows = _hf_text.encoded(corpus, path, options.max_seq_len)
    with timed(phases, f"{label}: tokenise the training rows", note=f"{len(train)} texts"):
        rows(train)
    with timed(phases, f"{label}: tokenise the validation rows", note=f"{len(val)} texts"):
        val_inputs = rows(val)
    labels = torch.tensor(corpus.labels)[val]
    with timed(phases, f"{label}: load the pretrained model", note=f"{options.layers} layers"):
        _hf_text.pretrained(path, options.layers, corpus.num_labels)
    with timed(phases, f"{label}: copy + head + LoRA, to {device.type}", device):
        model = _hf_text.build_classifier(path, options.layers, corpus.num_labels, workload.lora(),
                                          workload.pooling(), workload.seed).to(device)
    del model
    with timed(phases, f"{label}: evaluation batches", device):
        batches = workload._eval_plan(val_inputs, labels)
        workload._eval_plan(val_inputs, labels, workload.eval_subset)
    phases.notes[f"{label}: evaluation batches"] = f"{len(batches)} batches of the full split, and the subset"


def construction(setup: Setup, phases: Phases) -> Any:
    """Build the workload cold, time its pieces cold and warm, build it warm; return the warm one."""
    from tuner.workloads._hf_text import TextClassification

    build = lambda: create_workload(setup.workload, setup.options, seed=0, device=setup.device,  # noqa: E731
                                    num_threads=setup.threads)
    with timed(phases, "create_workload, first in the process", setup.device):
        workload = build()
    if isinstance(workload, TextClassification):
        clear_text_caches()
        text_pieces(workload, phases, "cold")
        cold = sum(v for k, v in phases.seconds.items() if k.startswith("cold:"))
        phases.add("cold: the rest of the first create_workload",
                   phases.seconds["create_workload, first in the process"] - cold,
                   note="first calls: options, sampler, peft's first model, ...")
        text_pieces(workload, phases, "warm")
    del workload
    with timed(phases, "create_workload again (warm caches)", setup.device):
        workload = build()
    return workload


# ------------------------------------------------------------------ the trial
def run_trial(setup: Setup, workload: Any, phases: Phases) -> tuple[Trainer, dict[str, float]]:
    """The trial's loop; its phases go into `phases`; returns the trainer and its last report (plus the CPU
    share)."""
    with timed(phases, "build the optimizer", setup.device):
        optimizer = build_optimizer(workload.model, setup.method, pairs=workload.pairs or None, **setup.hparams,
                                    **({} if setup.precision == "fp32" else {"precision": setup.precision}))
    trainer = Trainer(workload, optimizer, eval_every=setup.eval_every, max_grad_evals=setup.grad_evals,
                      plan=setup.plan, precision=setup.precision)
    loop = Phases()
    # host time only (no device sync: that would change the step loop); it includes the blocking copies' waits
    workload.next_batch = counting(loop, "next_batch", workload.next_batch, "cpu")
    workload.evaluate = counting(loop, "", workload.evaluate, setup.device,
                                 kind=lambda *a, subset=False, **k: "subset evaluations" if subset else
                                 "full evaluations")
    workload.diagnostics = counting(loop, "diagnostics", workload.diagnostics, setup.device)
    step_cpu = [0.0]
    step = optimizer.step

    def timed_step(closure: Callable[[], Any]) -> Any:  # CPU seconds inside optimizer steps
        begin = time.process_time()
        try:
            return step(closure)
        finally:
            step_cpu[0] += time.process_time() - begin

    optimizer.step = timed_step
    loop_cpu, saved_at, last = time.process_time(), time.monotonic(), {}
    with tempfile.TemporaryDirectory() as folder:
        for report in trainer.run():
            last = report
            if setup.plan is None or trainer.last_at_point or time.monotonic() - saved_at >= CHECKPOINT_S:
                with timed(loop, "checkpoints"):
                    torch.save(trainer.state_dict(), Path(folder) / "trainer.pt")
                saved_at = time.monotonic()
    last = dict(last)
    last["cpu_share"] = step_cpu[0] / max(time.process_time() - loop_cpu, 1e-9)
    steps = int(last["step"])
    phases.add("optimizer steps", last["cost/train_s"], steps,
               note=f"{1e3 * last['cost/train_s'] / max(steps, 1):.1f} ms/step, "
                    f"{last['cost/grad_evals']:.0f} grad evals")
    for name in ("next_batch", "full evaluations", "subset evaluations", "diagnostics", "checkpoints"):
        if name in loop.seconds:
            phases.add(name, loop.seconds[name], loop.counts[name])
    phases.add("remainder (reports, closures, the loop)", last["cost/wall_s"] - last["cost/train_s"]
               - sum(loop.seconds.values()), count=0)
    return trainer, last


def per_call(trainer: Trainer, phases: Phases, name: str) -> float:
    """Seconds per call of an evaluation kind or the diagnostics: from the trial, or one call timed now."""
    if phases.counts.get(name):
        return phases.seconds[name] / phases.counts[name]
    device = trainer._device
    sync(device)
    begin = time.perf_counter()
    if name == "diagnostics":
        trainer._diagnostics()
    else:
        trainer._evaluate("subset" if name == "subset evaluations" else "full")
    sync(device)
    return time.perf_counter() - begin


# ------------------------------------------------------------------ projection
def plan_counts(setup: Setup, has_subset: bool) -> dict[str, int]:
    """Full evaluations, subset evaluations and diagnostics the trial runs (Trainer's rules, replayed);
    `has_subset`: whether the workload has an evaluation subset (without one every report is a full one)."""
    per_step = get_method(setup.method).grad_evals_per_step(**setup.hparams)
    steps = math.ceil(setup.grad_evals / per_step)
    plan = setup.plan or EvalPlan()
    reports = list(range(setup.eval_every, steps + 1, setup.eval_every))
    reports += [] if reports and reports[-1] == steps else [steps]
    counts = {"full evaluations": 0, "subset evaluations": 0, "diagnostics": 0}
    before = {"plan": 0.0, "curve": 0.0}
    for i, step in enumerate(reports):
        final = i == len(reports) - 1
        now = {"plan": float(step) if plan.clock == "step" else step * per_step, "curve": step * per_step}
        at_point = final or setup.plan is None or plan.at_point(before["plan"], now["plan"])
        at_curve = setup.plan is not None and plan.at_curve(before["curve"], now["curve"])
        at_diag = setup.plan is not None and plan.at_diag(before["curve"], now["curve"])
        full = at_point or not has_subset
        counts["full evaluations" if full else "subset evaluations"] += full or at_curve
        counts["diagnostics"] += setup.plan is None or at_point or at_diag
        before = now
    return counts


def projection(args: argparse.Namespace, setup: Setup, trainer: Trainer, phases: Phases,
               grad_evals: int) -> list[str]:
    """The trial's phases scaled to `grad_evals` (steps in proportion, evaluations by the plan's count then;
    a kind the short trial did not run is timed once now)."""
    counts = plan_counts(trial_setup(argparse.Namespace(**{**vars(args), "grad_evals": grad_evals})),
                         getattr(trainer.workload, "eval_subset", None) is not None)
    out = {"optimizer steps": phases.seconds["optimizer steps"] * grad_evals / setup.grad_evals,
           "next_batch": phases.seconds.get("next_batch", 0.0) * grad_evals / setup.grad_evals}
    for name, n in counts.items():
        out[name] = n * per_call(trainer, phases, name) if n else 0.0
    total = sum(out.values())
    lines = [f"projected to {grad_evals} grad evals (warm construction "
             f"{phases.seconds['create_workload again (warm caches)']:.1f} s, first in a process "
             f"{phases.seconds['create_workload, first in the process']:.1f} s, not included):"]
    for name, value in out.items():
        count = f" x {counts[name]}" if name in counts else ""
        lines.append(f"  {name + count:<44s} {value:9.1f} s  {value / total:6.1%}")
    lines.append(f"  {'total':<44s} {total:9.1f} s")
    return lines


# ------------------------------------------------------------------ output
def table(phases: Phases, names: list[str], total: float, counted: bool = False) -> list[str]:
    lines = []
    for name in names:
        seconds, count = phases.seconds[name], phases.counts[name]
        each = f"{count:5d} x {seconds / count:8.3f} s" if counted and count else f"{'':17s}"
        note = f"  ({phases.notes[name]})" if name in phases.notes else ""
        lines.append(f"  {name:<44s} {seconds:9.2f} s {seconds / total:6.1%}  {each}{note}")
    return lines


def report(setup: Setup, phases: Phases, last: dict[str, float], wall: float) -> list[str]:
    plan = "legacy: full evaluation and checkpoint at every report" if setup.plan is None else \
        f"full at {list(setup.plan.full_at or [])} on {setup.plan.clock}, subset every {setup.plan.curve_every:g}, " \
        f"diagnostics every {setup.plan.diag_every:g} grad evals"
    build = [n for n in phases.seconds if n.startswith(("import", "create_workload"))]
    pieces = [n for n in phases.seconds if n.startswith(("cold:", "warm:"))]
    trial = [n for n in phases.seconds if n not in build and n not in pieces]
    trial_wall = last["cost/wall_s"]
    lines = [f"trial_time: {setup.workload} {setup.options}", f"  {setup.method} (lr {setup.hparams['lr']:g}), "
             f"{setup.grad_evals} grad evals, eval_every {setup.eval_every}, {plan}; device {setup.device}, "
             f"precision {setup.precision}, {setup.threads} CPU thread(s), torch {torch.__version__}",
             f"construction (seconds, share of this process's {wall:.1f} s):"]
    lines += table(phases, build, wall)
    if pieces:
        lines.append("  its pieces, each timed alone on cold caches (as the first create_workload found them), "
                     "then warm:")
        lines += table(phases, pieces, wall)
    lines.append(f"the trial (seconds, share of its wall time {trial_wall:.1f} s from the first step to the last "
                 f"report; the optimizer build before it):")
    lines += table(phases, trial, trial_wall, counted=True)
    lines.append(f"trial share (optimizer steps / trial wall) {last['cost/train_s'] / trial_wall:.3f}, "
                 f"in CPU time {last['cpu_share']:.3f}; target >= 0.85; final eval/accuracy "
                 f"{last.get('eval/accuracy', math.nan):.3f}")
    return lines


def phase_table(args: argparse.Namespace) -> None:
    setup = trial_setup(args)
    phases = Phases()
    phases.add("import torch, methods, tuner", IMPORTS_S)
    import_libraries(phases)
    torch.set_num_threads(setup.threads)
    workload = construction(setup, phases)
    trainer, last = run_trial(setup, workload, phases)
    for text in report(setup, phases, last, time.perf_counter() - START):
        print(text, flush=True)
    if args.project:
        for text in projection(args, setup, trainer, phases, args.project):
            print(text, flush=True)
    print(f"total wall time {time.perf_counter() - START:.1f} s", flush=True)


# ------------------------------------------------------------------ --experiment (Ray, MLflow)
def _trial_spans(experiment_dir: Path) -> list[tuple[float, float]]:
    """(start, end) in Unix seconds of every trial Ray wrote under `experiment_dir`, from its last result."""
    import json

    spans = []
    for result in experiment_dir.glob("train_trial_*/result.json"):
        lines = result.read_text().strip().splitlines()
        if lines:
            last = json.loads(lines[-1])
            spans.append((last["timestamp"] - last["time_total_s"], float(last["timestamp"])))
    return spans


def experiment_share(grad_evals: int, samples: int, preflight: bool) -> None:
    from mlflow import MlflowClient

    with tempfile.TemporaryDirectory() as folder:
        store = Path(folder) / "results"
        sets = [f"budget.trial_grad_evals={grad_evals}", f"budget.num_samples={samples}", "confirm=null",
                f"storage.path={store}", "name=trial-time"]
        command = [sys.executable, "-m", "tuner", "run", str(REPO / "search_spaces" / "bar.yaml")]
        command += [] if preflight else ["--no-preflight"]
        for item in sets:
            command += ["--set", item]
        started = time.time()
        begin = time.perf_counter()
        proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
        wall = time.perf_counter() - begin
        if proc.returncode:
            print(proc.stdout[-2000:], proc.stderr[-2000:])
            raise SystemExit(proc.returncode)
        spec = load_spec(REPO / "search_spaces" / "bar.yaml")
        client = MlflowClient(f"sqlite:///{store / 'trial-time' / 'mlflow.db'}")
        exp = client.get_experiment_by_name("sharptune/trial-time")
        runs = [r for r in client.search_runs([exp.experiment_id], max_results=1000)
                if r.data.tags.get("sharptune.role") == "trial"]
        train = sum(r.data.metrics.get("cost/train_s", 0.0) for r in runs)
        trial_wall = sum(r.data.metrics.get("cost/wall_s", 0.0) for r in runs)
        spans = _trial_spans(store / "trial-time")
        slots = spec.budget.max_concurrent_trials
        print(f"bar.yaml, {samples} samples x {grad_evals} grad evals, no confirmation"
              f"{'' if preflight else ', --no-preflight'}: `tuner run` {wall:.0f} s, "
              f"{len(runs)} trials, sum cost/train_s {train:.0f} s, sum cost/wall_s {trial_wall:.0f} s")
        if spans:  # Ray's timestamps are whole seconds
            first, last = min(s for s, _ in spans), max(e for _, e in spans)
            in_trials = sum(e - s for s, e in spans)
            print(f"command start to first trial start {first - started:.0f} s (imports, spec, preflight, Ray, "
                  f"MLflow); trials {last - first:.0f} s; last trial's end to exit {started + wall - last:.0f} s")
            slot_s = wall * slots
            parts = {"optimizer steps": train, "in-trial evaluation, diagnostics, reports": trial_wall - train,
                     "trial set-up (model load, Ray hand-over)": in_trials - trial_wall,
                     "idle slots between the first start and the last end": (last - first) * slots - in_trials,
                     "start-up and end of the command": slot_s - (last - first) * slots}
            print(f"where the {slot_s:.0f} slot-seconds ({slots} slots x {wall:.0f} s) went:")
            for name, value in parts.items():
                print(f"  {name:<54s} {value:7.0f} s  {value / slot_s:6.1%}")
        print(f"trial share {train / trial_wall:.3f}; experiment share (train / (wall x {slots})) "
              f"{train / (wall * slots):.3f}; target >= 0.65 at 600 grad evals")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default="bar.yaml", help="a spec in search_spaces/ or a path (default bar.yaml)")
    parser.add_argument("--workload", default=None, help="another workload than the spec's (its options: --set)")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="a workload option, VALUE as YAML (repeatable)")
    parser.add_argument("--method", default=None, help="default: the spec's first method")
    parser.add_argument("--grad-evals", type=int, default=600, help="default 600, bar.yaml's shipped budget")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--device", default="auto", help="auto (CUDA when there is one), cpu, cuda[:N]")
    parser.add_argument("--precision", choices=PRECISIONS, default=None, help="default: the spec's")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: the spec's cpu)")
    parser.add_argument("--legacy", action="store_true", help="full evaluation and a checkpoint at every report")
    parser.add_argument("--project", type=int, default=None, metavar="N", help="scale the trial to N grad evals")
    parser.add_argument("--experiment", action="store_true")
    parser.add_argument("--samples", type=int, default=6)
    parser.add_argument("--preflight", action="store_true", help="--experiment: run the preflight, as a user does")
    args = parser.parse_args(argv)
    if args.experiment:
        experiment_share(args.grad_evals, args.samples, args.preflight)
    else:
        phase_table(args)


if __name__ == "__main__":
    main()
