"""What the platform costs: `tuner run` versus a minimal hand-written Ray Tune script, same trials.

    python benchmarks/platform.py [--rounds 2] [--trials 6] [--grad-evals 2000] [--keep DIR]

Both sides run the very same trainable (`tuner.trial.trainable.train_trial`) on the very same configs, with
the same concurrency, each as its own Python process started from scratch (imports, Ray start-up and
shutdown included). The `tuner run` side adds everything the platform does: spec validation, the Optuna
searcher (grid sampler, so the configs are fixed), MLflow parent/child runs with batched metric
histories, progress lines, the summary, the winners' tags and the checkpoint clean-up. The hand-written
side is the shortest correct Ray Tune script: `ray.init`, `Tuner(...).fit()`, nothing logged.

Rounds alternate the two sides (this machine is noisy); the ratio printed is the median over rounds of
(tuner wall / hand-written wall) within the round. Target: <= 1.05.

Also printed, from the trials' own reports: the share of trial time spent inside optimizer steps
(`cost/train_s` over Ray's `time_total_s` of the trial: the rest is model/data set-up, evaluation,
diagnostics, checkpoints and reporting), and the share of the experiment's CPU slots that were busy
with optimizer steps (sum of `cost/train_s` / (wall x concurrent trials)).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
# This folder holds platform.py, which would shadow the standard library's `platform` (torch and ray import it)
# while the folder is first on sys.path, as it is for `python benchmarks/x.py`: put the repository there instead.
sys.path[:] = [str(REPO), *(p for p in sys.path if Path(p or ".").resolve() != REPO / "benchmarks")]

import yaml

CONCURRENT = 2
LRS = [0.02, 0.05, 0.1, 0.2, 0.3, 0.5]


def make_spec(folder: Path, name: str, trials: int, grad_evals: int, eval_every: int) -> Path:
    """A grid spec: `trials` configs (sgd and sam over learning rates) on the MNIST MLP, FIFO."""
    per_method = max(1, trials // 2)
    spec = {
        "name": name,
        "description": "platform overhead benchmark",
        "metric": {"name": "eval/accuracy", "goal": "maximize"},
        "workload": {"name": "mnist_mlp", "options": {"dataset": "mnist", "depth": 2, "width": 256,
                                                      "batch_size": 64, "diag_examples": 256}},
        "methods": ["sgd", "sam"],
        "parameters": {"lr": {"values": LRS[:per_method]}, "rho": {"value": 0.05, "when": {"method": ["sam"]}},
                       "momentum": {"value": 0.9}},
        "sampler": {"name": "grid", "seed": 0},
        "scheduler": {"name": "fifo"},
        "budget": {"max_concurrent_trials": CONCURRENT, "time": "1h", "trial_grad_evals": grad_evals,
                   "eval_every": eval_every},
        "resources": {"cpu": 1, "gpu": 0},
        "seed": 0,
        "storage": {"path": str(folder / "results")},
        "max_failures": 0,
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


HANDWRITTEN = '''
import json, sys
import ray
from ray import tune
from tuner.spec import load_spec
from tuner.run.experiment import trial_setup
from tuner.trial.trainable import train_trial

spec_path, points_path, storage = sys.argv[1:4]
spec = load_spec(spec_path)
points = json.loads(open(points_path).read())
ray.init(address="local", num_cpus={cpus}, include_dashboard=False, logging_level="WARNING",
         _node_ip_address="127.0.0.1")
trainable = tune.with_resources(tune.with_parameters(train_trial, setup=trial_setup(spec)), {{"cpu": 1}})
tuner = tune.Tuner(trainable, param_space={{"_point": tune.grid_search(points)}},
                   tune_config=tune.TuneConfig(max_concurrent_trials={cpus}, reuse_actors=True),
                   run_config=tune.RunConfig(name="handwritten", storage_path=storage, verbose=0))
results = tuner.fit()
assert results.num_errors == 0 and len(results) == len(points), "hand-written run failed"
ray.shutdown()
'''


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "RAY_USAGE_STATS_ENABLED": "0",
            "MLFLOW_DISABLE_TELEMETRY": "true", "HF_HUB_OFFLINE": "1"}


def _timed(cmd: list[str], log: Path) -> float:
    start = time.perf_counter()
    with log.open("w") as out:
        proc = subprocess.run(cmd, cwd=REPO, env=_env(), stdout=out, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"benchmark run failed (exit {proc.returncode}); see {log}")
    return wall


def trial_results(experiment_dir: Path) -> list[dict[str, Any]]:
    """(config, last result) of every trial Ray wrote under `experiment_dir`."""
    from tuner.trial.protocol import public_values, trial_values

    out = []
    for trial_dir in sorted(experiment_dir.glob("train_trial_*")):
        lines = (trial_dir / "result.json").read_text().strip().splitlines()
        config = json.loads((trial_dir / "params.json").read_text())
        out.append({"point": public_values(trial_values(config)), "last": json.loads(lines[-1])})
    return out


def shares(results: list[dict[str, Any]], wall: float) -> tuple[float, float]:
    """(optimizer-step share of trial time, optimizer-step share of the run's CPU slots)."""
    train = sum(r["last"]["cost/train_s"] for r in results)
    trial_time = sum(r["last"]["time_total_s"] for r in results)
    return train / trial_time, train / (wall * CONCURRENT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--trials", type=int, default=6, help="even; half sgd, half sam")
    parser.add_argument("--grad-evals", type=int, default=2000)
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--keep", type=Path, help="keep the runs' folders here (default: a temporary folder)")
    args = parser.parse_args()

    root = args.keep or Path(tempfile.mkdtemp(prefix="sharptune-platform-"))
    root.mkdir(parents=True, exist_ok=True)
    print(f"{args.trials} trials (mnist_mlp 784-256-256-10, sgd/sam grid over lr), {args.grad_evals} grad evals "
          f"each, report every {args.eval_every} steps, {CONCURRENT} concurrent, FIFO; {args.rounds} rounds; "
          f"folders in {root}", flush=True)
    script = root / "handwritten.py"
    script.write_text(HANDWRITTEN.format(cpus=CONCURRENT), encoding="utf-8")

    rows = []
    points: list[dict[str, Any]] | None = None  # the grid's configs, from the first tuner run
    for rnd in range(args.rounds):
        name = f"platform-{rnd}"
        spec = make_spec(root, name, args.trials, args.grad_evals, args.eval_every)
        sides = ["tuner", "handwritten"] if rnd % 2 == 0 else ["handwritten", "tuner"]
        walls: dict[str, float] = {}
        for side in sides:
            if side == "tuner":
                walls[side] = _timed([sys.executable, "-m", "tuner", "run", str(spec)], root / f"{name}-tuner.log")
                tuned = trial_results(root / "results" / name)
                points = points or [r["point"] for r in tuned]
            else:  # exactly the configs the tuner's grid sampler produced
                assert points is not None
                points_file = root / f"{name}-points.json"
                points_file.write_text(json.dumps(points), encoding="utf-8")
                store = root / f"{name}-handwritten"
                walls[side] = _timed([sys.executable, str(script), str(spec), str(points_file), str(store)],
                                     root / f"{name}-handwritten.log")
                handwritten = trial_results(store / "handwritten")
        key = sorted(json.dumps(r["point"], sort_keys=True) for r in tuned)
        same = key == sorted(json.dumps(r["point"], sort_keys=True) for r in handwritten)
        ratio = walls["tuner"] / walls["handwritten"]
        t_share, t_slots = shares(tuned, walls["tuner"])
        h_share, h_slots = shares(handwritten, walls["handwritten"])
        rows.append((ratio, t_share, t_slots, h_share, h_slots))
        print(f"round {rnd}: tuner run {walls['tuner']:.1f} s, hand-written {walls['handwritten']:.1f} s, "
              f"ratio {ratio:.3f}; same configs: {same}; optimizer-step share of trial time "
              f"{t_share:.1%} / {h_share:.1%}, of CPU slots {t_slots:.1%} / {h_slots:.1%} (tuner / hand-written)",
              flush=True)
        if not same:
            sys.exit("the two sides ran different configs: the comparison is void")

    ratio = statistics.median(r[0] for r in rows)
    print(f"\nwall-time ratio tuner run / hand-written Ray Tune: median {ratio:.3f} over {len(rows)} rounds "
          f"(target <= 1.05: {'met' if ratio <= 1.05 else 'MISSED'})")
    print(f"share of trial time inside optimizer steps: {statistics.median(r[1] for r in rows):.1%} "
          f"(hand-written {statistics.median(r[3] for r in rows):.1%}); share of CPU slots: "
          f"{statistics.median(r[2] for r in rows):.1%} (hand-written {statistics.median(r[4] for r in rows):.1%})")


if __name__ == "__main__":
    main()
