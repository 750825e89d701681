"""Does ASHA pay for itself? ASHA versus FIFO at full budget on the same sampled configs.

    python benchmarks/asha.py [--configs 16] [--grad-evals 2000] [--seeds 0 1 2]

The configs are drawn once, by the spec's own Optuna space (`tuner.run.optuna_space.build_define`, random sampler,
fixed seed): sgd and sam on the MNIST MLP with log-uniform learning rates and SAM radii. Both runs hand
Ray Tune exactly that list (`param_space={"_point": grid_search(points)}`) with the platform's trainable,
two trials at a time; one run uses the platform's search scheduler (`tuner.run.ray_setup.search_scheduler`:
with `budget.split: per_method`, the default for several methods, one ASHA per method, so a SAM trial is
compared only with SAM trials; clock `cost/grad_evals`, so SAM pays for its second gradient), the other
FIFO, every trial to its full budget. `--split shared` measures the old protocol, one ASHA across methods.
Trials are seeded, so a config reaches the same accuracy in both runs when both train it fully.

Printed, per seed (a seed draws a new set of configs) and as the median over seeds: gradient evaluations
spent by each run, the best validation accuracy each found (ASHA's best among the trials it let finish),
and the two ratios. Target: ASHA within 1 % of FIFO's best for at most
35 % of its gradient evaluations.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
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


def make_spec(folder: Path, configs: int, grad_evals: int, seed: int, split: str) -> Path:
    spec = {
        "name": "asha-benchmark",
        "metric": {"name": "eval/accuracy", "goal": "maximize"},
        "workload": {"name": "mnist_mlp", "options": {"dataset": "mnist", "depth": 2, "width": 128,
                                                      "batch_size": 64, "diag_examples": 128}},
        "methods": ["sgd", "sam"],
        "parameters": {"lr": {"type": "float", "low": 0.002, "high": 2.0, "log": True},
                       "rho": {"type": "float", "low": 0.005, "high": 0.5, "log": True, "when": {"method": ["sam"]}},
                       "momentum": {"value": 0.9}},
        "sampler": {"name": "random", "seed": seed},
        "scheduler": {"name": "asha", "grace_period": grad_evals // 16, "reduction_factor": 3},
        "budget": {"num_samples": configs, "split": split, "max_concurrent_trials": CONCURRENT,
                   "trial_grad_evals": grad_evals,
                   "eval_every": grad_evals // 40},
        "resources": {"cpu": 1, "gpu": 0},
        "seed": seed,
        "storage": {"path": str(folder)},
    }
    path = folder / "asha.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


def sample_points(spec: Any, n: int) -> list[dict[str, Any]]:
    """`n` configs from the spec's define-by-run space, as the platform's searcher would draw them."""
    import optuna

    from tuner.run.optuna_space import build_define

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=spec.seed))
    define = build_define(spec)
    return [define(study.ask()) for _ in range(n)]


def run(spec: Any, points: list[dict[str, Any]], scheduler: Any, name: str, storage: Path) -> dict[str, Any]:
    """One Ray Tune run over `points`; what it spent and the best completed accuracy."""
    from ray import tune

    from tuner.names import COMPLETED
    from tuner.run.experiment import make_trainable
    from tuner.trial.protocol import outcome

    start = time.perf_counter()
    results = tune.Tuner(
        make_trainable(spec), param_space={"_point": tune.grid_search(points)},
        tune_config=tune.TuneConfig(scheduler=scheduler, max_concurrent_trials=CONCURRENT, reuse_actors=True),
        run_config=tune.RunConfig(name=name, storage_path=str(storage), verbose=0)).fit()
    wall = time.perf_counter() - start
    if results.num_errors:
        sys.exit(f"{name}: {results.num_errors} trials errored")
    finals = [(r.metrics, r.config["_point"]) for r in results]
    completed = [(m, p) for m, p in finals if outcome(m) == COMPLETED]
    best, point = max(completed, key=lambda mp: mp[0][spec.metric.name])
    return {"grad_evals": sum(m["cost/grad_evals"] for m, _ in finals), "best": best[spec.metric.name],
            "best_point": point, "completed": len(completed), "trials": len(finals), "wall": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", type=int, default=16)
    parser.add_argument("--grad-evals", type=int, default=2000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                        help="one comparison per seed (a seed draws the configs and seeds the trials)")
    parser.add_argument("--split", choices=("per_method", "shared"), default="per_method",
                        help="ASHA per method (the platform's default) or one ASHA across methods")
    args = parser.parse_args()
    for key, value in {"RAY_USAGE_STATS_ENABLED": "0", "HF_HUB_OFFLINE": "1", "RAY_AIR_NEW_OUTPUT": "0"}.items():
        os.environ.setdefault(key, value)

    import ray
    from ray.tune.schedulers import FIFOScheduler

    from tuner.run.ray_setup import search_scheduler
    from tuner.spec import load_spec

    logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
    ray.init(address="local", num_cpus=CONCURRENT, include_dashboard=False, logging_level="WARNING",
             _node_ip_address="127.0.0.1")
    rows = []
    try:
        for seed in args.seeds:
            folder = Path(tempfile.mkdtemp(prefix=f"sharptune-asha-{seed}-"))
            spec = load_spec(make_spec(folder, args.configs, args.grad_evals, seed, args.split))
            points = sample_points(spec, args.configs)
            s = spec.scheduler
            print(f"seed {seed}: {len(points)} configs (sgd/sam on mnist_mlp 784-128-128-10), {args.grad_evals} "
                  f"grad evals each; ASHA ({args.split}) grace {s.grace_period}, reduction {s.reduction_factor}, "
                  f"clock {s.time_attr}; "
                  f"{CONCURRENT} trials at a time", flush=True)
            asha = run(spec, points, search_scheduler(spec), "asha", folder)
            fifo = run(spec, points, FIFOScheduler(), "fifo", folder)
            for name, r in (("FIFO", fifo), ("ASHA", asha)):
                print(f"  {name}: {r['grad_evals']:.0f} grad evals, {r['completed']}/{r['trials']} trials to full "
                      f"budget, best eval/accuracy {r['best']:.4f} ({r['best_point']}), {r['wall']:.0f} s")
            evals = asha["grad_evals"] / fifo["grad_evals"]
            gap = (fifo["best"] - asha["best"]) / fifo["best"]
            rows.append((seed, evals, gap))
            print(f"  ASHA: {evals:.1%} of FIFO's gradient evaluations, best accuracy gap {gap:+.2%}", flush=True)
    finally:
        ray.shutdown()
    print("\nseed  ASHA evals / FIFO  best gap  target (<= 35 % evals, within 1 %)")
    for seed, evals, gap in rows:
        print(f"{seed:>4}  {evals:>16.1%}  {gap:>+8.2%}  {'met' if evals <= 0.35 and gap <= 0.01 else 'MISSED'}")
    evals, gap = statistics.median(r[1] for r in rows), statistics.median(r[2] for r in rows)
    print(f"median {evals:>14.1%}  {gap:>+8.2%}  {'met' if evals <= 0.35 and gap <= 0.01 else 'MISSED'}")


if __name__ == "__main__":
    main()
