"""Where a trial's time goes, per shipped spec's workload: set-up, steps, evaluation, diagnostics,
checkpoints, reporting; and the two shares of issue 11.

    python benchmarks/trial_time.py [--specs bar.yaml all_methods.yaml] [--grad-evals 300] [--legacy]
    python benchmarks/trial_time.py --experiment [--grad-evals 300] [--samples 6] [--preflight]

The first form runs, in this process and without Ray, one trial per distinct workload of the given
specs (each spec's first method, its default hyperparameters, lr 1e-3) exactly as `train_trial` does:
the same `build_trial`, the same `EvalPlan` from `trial_setup(spec)`, and the same checkpoint rule (a
`torch.save` of the trainer state at the scheduler's points and every 60 s). A second build of the
same trial shows the set-up once the process holds the base model (Ray's `reuse_actors`).
`--legacy` evaluates the full split and checkpoints at every report, as the trainable did before.

Trial share = cost/train_s / cost/wall_s (the trial's own clock, from the first step to the last
report); the line also gives it with the set-up counted. Target: >= 0.85. `cpu` is the same share in
this process's CPU time (optimizer steps / the whole loop): on a shared machine wall time also counts
the time other processes hold the core, and a large evaluation batch suffers more from that than a
small training batch, so the two shares differ there; on a quiet machine they agree.

`--experiment` runs `python -m tuner run search_spaces/bar.yaml` with `--samples` samples of
`--grad-evals` grad evals and no confirmation, and prints the experiment share: sum of cost/train_s
over the trials / (wall time of the command x max concurrent trials). Target: >= 0.70. It also splits
the command's wall time into start-up (to the first trial's start), trials, and the end after the last.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# This folder holds platform.py, which would shadow the standard library's `platform` (torch and ray import it)
# while the folder is first on sys.path, as it is for `python benchmarks/x.py`: put the repository there instead.
sys.path[:] = [str(REPO), *(p for p in sys.path if Path(p or ".").resolve() != REPO / "benchmarks")]

import torch

from tuner.run.experiment import trial_setup
from tuner.spec import load_spec
from tuner.trial.protocol import with_required
from tuner.trial.trainable import CHECKPOINT_S, build_trial, trial_plan
from tuner.trial.trainer import Trainer

PARTS = ("setup", "steps", "eval", "eval_subset", "diag", "checkpoint", "reporting")


def one_trial(spec_path: Path, grad_evals: int, legacy: bool) -> dict[str, float]:
    """Seconds per part of one in-process trial of the spec's first method."""
    spec = load_spec(spec_path, [f"budget.trial_grad_evals={grad_evals}"])
    setup = trial_setup(spec)
    point = {"method": spec.methods[0], "lr": 1e-3}
    torch.set_num_threads(max(1, int(setup["cpu"])))
    begin = time.perf_counter()
    workload, optimizer, _ = build_trial(setup, point)
    first_setup = time.perf_counter() - begin
    begin = time.perf_counter()
    workload, optimizer, _ = build_trial(setup, point)  # the process now holds what a reused actor holds
    setup_s = time.perf_counter() - begin
    trainer = Trainer(workload, optimizer, eval_every=int(setup["eval_every"]), max_grad_evals=grad_evals,
                      plan=None if legacy else trial_plan(setup))
    required = tuple(setup["required_metrics"])
    checkpoint_s, saved_at, last = 0.0, time.monotonic(), {}
    step_cpu = [0.0]
    step = optimizer.step

    def timed_step(closure):  # CPU seconds inside optimizer steps, beside the trainer's wall clock
        begin = time.process_time()
        try:
            return step(closure)
        finally:
            step_cpu[0] += time.process_time() - begin

    optimizer.step = timed_step
    loop_cpu = time.process_time()
    with tempfile.TemporaryDirectory() as folder:
        for report in trainer.run():
            last = with_required(report, required)
            if trainer.last_at_point or time.monotonic() - saved_at >= CHECKPOINT_S:
                t = time.perf_counter()
                torch.save(trainer.state_dict(), Path(folder) / "trainer.pt")
                checkpoint_s += time.perf_counter() - t
                saved_at = time.monotonic()
    loop_cpu = time.process_time() - loop_cpu
    wall, train = last["cost/wall_s"], last["cost/train_s"]
    parts = {"first_setup": first_setup, "setup": setup_s, "steps": train, **trainer.seconds,
             "checkpoint": checkpoint_s, "cpu_share": step_cpu[0] / loop_cpu}
    parts["reporting"] = wall - train - checkpoint_s - sum(trainer.seconds.values())  # the loop's own cost
    parts["wall"] = wall
    return parts


def trial_table(specs: list[str], grad_evals: int, legacy: bool) -> None:
    seen: set[str] = set()
    mode = "legacy: full eval + checkpoint every report" if legacy else "as shipped"
    print(f"trial time at {grad_evals} grad evals per trial ({mode}), seconds")
    print(f"{'spec / workload':34s} " + " ".join(f"{p:>11s}" for p in PARTS)
          + f" {'wall_s':>8s} {'share':>6s} {'+setup':>6s} {'cpu':>6s}")
    total_train = total_wall = total_setup = 0.0
    for name in specs:
        spec = load_spec(REPO / "search_spaces" / name)
        key = f"{spec.workload.name} {sorted(spec.workload.options.items())}"
        if key in seen:
            continue
        seen.add(key)
        parts = one_trial(REPO / "search_spaces" / name, grad_evals, legacy)
        share = parts["steps"] / parts["wall"]
        with_setup = parts["steps"] / (parts["wall"] + parts["setup"])
        total_train, total_wall, total_setup = total_train + parts["steps"], total_wall + parts["wall"], \
            total_setup + parts["setup"]
        print(f"{name + ' / ' + spec.workload.name:34s} " + " ".join(f"{parts[p]:11.2f}" for p in PARTS)
              + f" {parts['wall']:8.1f} {share:6.2f} {with_setup:6.2f} {parts['cpu_share']:6.2f}   "
              f"(first set-up in a process {parts['first_setup']:.1f} s)", flush=True)
    if total_wall:
        print(f"trial share (sum cost/train_s / sum cost/wall_s) = {total_train / total_wall:.3f} "
              f"(with set-up {total_train / (total_wall + total_setup):.3f}); target >= 0.85")


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
              f"{train / (wall * slots):.3f}; target >= 0.70")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--specs", nargs="+", default=["bar.yaml", "all_methods.yaml"])
    parser.add_argument("--grad-evals", type=int, default=300)
    parser.add_argument("--legacy", action="store_true")
    parser.add_argument("--experiment", action="store_true")
    parser.add_argument("--samples", type=int, default=6)
    parser.add_argument("--preflight", action="store_true", help="--experiment: run the preflight, as a user does")
    args = parser.parse_args(argv)
    if args.experiment:
        experiment_share(args.grad_evals, args.samples, args.preflight)
    else:
        trial_table(args.specs, args.grad_evals, args.legacy)


if __name__ == "__main__":
    main()
