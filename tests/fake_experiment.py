"""A small, realistic sharptune experiment written straight into a real MLflow SQLite store.

Follows docs/DESIGN.md section 4 exactly (parent + children, search and confirm phases, seeds,
label-noise levels, metric histories with step = cost/grad_evals, one diverged and two pruned runs,
two sam search trials that errored before their first step, with the `sharptune.error` tag),
so the report, robust winners and export can be tested without Ray or the runner.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

NAME = "demo-exp"
METRIC = "eval/accuracy"
SEEDS = (0, 1, 2)
NOISE = (0.0, 0.2)
STEP_TIME = {"sgd": 10.0, "sam": 19.5, "sgd_ire": 11.2}
PEAK_MEM = {"sgd": 100.0, "sam": 131.0, "sgd_ire": 117.0}
EVALS_PER_STEP = {"sgd": 1.0, "sam": 2.0, "sgd_ire": 1.1}
SEARCH = {  # method -> list of (hparams, final accuracy, status)
    "sgd": [({"lr": 0.01, "nesterov": False}, 0.80, "completed"),
            ({"lr": 0.05, "nesterov": True}, 0.83, "completed"),
            ({"lr": 0.2, "nesterov": False}, 0.78, "completed"),
            ({"lr": 0.002, "nesterov": True}, 0.55, "pruned"),
            ({"lr": 0.03, "nesterov": False}, 0.825, "completed")],
    "sam": [({"lr": 0.05, "rho": 0.05, "rho_schedule": "constant", "total_steps": 300}, 0.86, "completed"),
            ({"lr": 0.05, "rho": 0.2, "rho_schedule": "cosine", "total_steps": 300}, 0.855, "completed"),
            ({"lr": 0.01, "rho": 0.02, "rho_schedule": "constant", "total_steps": 300}, 0.81, "completed"),
            ({"lr": 0.1, "rho": 0.5, "rho_schedule": "cosine", "total_steps": 300}, 0.70, "pruned"),
            ({"lr": 0.03, "rho": 0.1, "rho_schedule": "cosine", "total_steps": 300}, 0.852, "completed")],
    "sgd_ire": [({"lr": 0.05, "kappa": 2.0, "gamma": 0.8}, 0.87, "completed"),
                ({"lr": 0.4, "kappa": 5.0, "gamma": 0.9}, 0.30, "diverged"),
                ({"lr": 0.02, "kappa": 1.0, "gamma": 0.6}, 0.84, "completed"),
                ({"lr": 0.05, "kappa": 3.0, "gamma": 0.95}, 0.85, "completed")],
}
# search trials that errored before reporting anything: method -> (hparams, error line), in start order
ERRORED = {"sam": [({"lr": 0.05, "rho": 0.1, "rho_schedule": "cosine"},
                    "ConfigError: schedule 'cosine' needs total_steps (the schedule's horizon)"),
                   ({"lr": 0.2, "rho": 0.3, "rho_schedule": "cosine"}, "RuntimeError: out of memory")]}
# confirmation accuracies: method -> seed -> (clean, noisy). sgd_ire has the best mean but a wide spread,
# sam is slightly lower but tight: the lower bound must prefer sam.
CONFIRM = {
    "sgd": {0: (0.830, 0.790), 1: (0.826, 0.784), 2: (0.834, 0.792)},
    "sam": {0: (0.862, 0.842), 1: (0.858, 0.838), 2: (0.860, 0.846)},
    "sgd_ire": {0: (0.905, 0.860), 1: (0.830, 0.790), 2: (0.880, 0.850)},
}
SPEC = {
    "name": NAME, "metric": {"name": METRIC, "goal": "maximize"},
    "workload": {"name": "two_moons", "options": {"n": 512}}, "methods": list(SEARCH),
    "budget": {"num_samples": 5, "trial_grad_evals": 600, "eval_every": 60},
    "confirm": {"top_k": 1, "seeds": list(SEEDS), "label_noise": list(NOISE)},
    # each method's resolved space, as the runner stores it (the report draws each axis on its scale)
    "space": {
        "sgd": {"lr": {"type": "float", "low": 0.001, "high": 0.5, "log": True},
                "nesterov": {"type": "categorical", "values": [False, True]}},
        "sam": {"lr": {"type": "float", "low": 0.001, "high": 0.5, "log": True},
                "rho": {"type": "float", "low": 0.01, "high": 0.5, "log": True},
                "rho_schedule": {"type": "categorical", "values": ["constant", "cosine"]},
                "total_steps": {"value": 300}},
        "sgd_ire": {"lr": {"type": "float", "low": 0.001, "high": 0.5, "log": True},
                    "kappa": {"type": "float", "low": 0.5, "high": 10.0, "log": True},
                    "gamma": {"type": "float", "low": 0.5, "high": 0.99}},
    },
}


@dataclass
class FakeExperiment:
    """Where the store is and what was written (for assertions)."""

    name: str
    storage: Path
    tracking_uri: str
    parent_id: str
    search_ids: dict[str, list[str]] = field(default_factory=dict)
    confirm_ids: dict[str, list[str]] = field(default_factory=dict)
    errored_ids: dict[str, list[str]] = field(default_factory=dict)
    winners: dict[str, dict[str, Any]] = field(default_factory=dict)


def _history(method: str, final: float, status: str, seed: int, with_diag: bool) -> list[Metric]:
    rng = np.random.default_rng(zlib.crc32(f"{method}{final}{seed}".encode()))
    total = 240 if status == "pruned" else 600
    steps = list(range(0, total + 1, 60))
    ts0 = 1_700_000_000_000
    out: list[Metric] = []
    for i, ge in enumerate(steps):
        frac = 1.0 - math.exp(-ge / 150.0)
        acc = 0.5 + (final - 0.5) * frac / (1.0 - math.exp(-total / 150.0))
        acc = final if i == len(steps) - 1 else acc + float(rng.normal(0, 0.003))  # final value exact
        loss = 0.7 * math.exp(-ge / 200.0) + 0.1
        step_ms = STEP_TIME[method] * (1.0 + float(rng.normal(0, 0.02)))
        metrics = {
            "eval/accuracy": min(acc, 1.0), "train/loss": loss, "cost/grad_evals": float(ge),
            "cost/fwd_passes": float(ge), "cost/bwd_passes": float(ge), "cost/step_time_ms": step_ms,
            "cost/wall_s": ge / EVALS_PER_STEP[method] * STEP_TIME[method] / 1000.0,
            "cost/peak_mem_mb": PEAK_MEM[method], "diag/balancedness_mean": 0.5 * math.exp(-ge / 300.0),
        }
        if with_diag:
            edge = 2.0 / 0.05 * (0.6 if method == "sam" else 1.0)
            lam = edge * (0.3 + 0.65 * frac)
            metrics.update({"diag/lambda_max": lam, "diag/sam_edge": edge, "diag/lambda_over_edge": lam / edge,
                            "diag/hessian_trace": 40.0 * (1.2 - 0.5 * frac)})
        if status == "diverged" and i == len(steps) - 1:
            metrics["train/loss"] = math.nan
            metrics["diverged"] = 1.0
        out += [Metric(k, v, ts0 + 1000 * i, ge) for k, v in metrics.items()]
    return out


def _child(client: MlflowClient, exp_id: str, parent_id: str, method: str, hp: dict[str, Any],
           final: float, status: str, phase: str, trial: str, seed: int, t0: int,
           extra_params: dict[str, Any] | None = None, error: str | None = None) -> str:
    tags = {"mlflow.parentRunId": parent_id, "sharptune.role": "trial", "sharptune.phase": phase,
            "sharptune.method": method, "sharptune.trial_id": trial, "sharptune.seed": str(seed),
            "sharptune.status": status, "mlflow.runName": f"{phase}-{method}-{trial}"}
    if status == "pruned":
        tags["sharptune.pruned_at"] = "240"
    if error is not None:
        tags["sharptune.error"] = error
    run = client.create_run(exp_id, start_time=t0, tags=tags)
    params = {"method": method, **hp, **(extra_params or {})}
    client.log_batch(run.info.run_id, params=[Param(k, str(v)) for k, v in params.items()])
    metrics = [] if status == "errored" else _history(method, final, status, seed, with_diag=method != "sgd_ire")
    for i in range(0, len(metrics), 900):
        client.log_batch(run.info.run_id, metrics=metrics[i:i + 900])
    client.set_terminated(run.info.run_id, "FAILED" if status in ("diverged", "errored") else "FINISHED",
                          end_time=t0 + 60_000)
    return run.info.run_id


def write_fake_experiment(root: Path, *, confirm: bool = True, name: str = NAME) -> FakeExperiment:
    """Write the experiment under `root/results/<name>/mlflow.db` and return what was written."""
    storage = root / "results"
    (storage / name).mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{(storage / name / 'mlflow.db').as_posix()}"
    client = MlflowClient(uri)
    exp_id = client.create_experiment(f"sharptune/{name}",
                                      artifact_location=(storage / name / "artifacts").as_uri())
    t0 = 1_700_000_000_000
    parent = client.create_run(exp_id, start_time=t0, tags={"sharptune.role": "parent", "mlflow.runName": name})
    pid = parent.info.run_id
    client.log_batch(pid, params=[Param("metric.name", METRIC), Param("metric.goal", "maximize"),
                                  Param("workload.name", "two_moons"), Param("methods", ",".join(SEARCH))])
    client.log_text(pid, yaml.safe_dump(SPEC, sort_keys=False), "spec.yaml")
    fake = FakeExperiment(name, storage, uri, pid)
    k = 0
    for method, trials in SEARCH.items():
        fake.search_ids[method] = []
        for hp, final, status in trials:
            k += 1
            fake.search_ids[method].append(
                _child(client, exp_id, pid, method, hp, final, status, "search", str(k), 0, t0 + k * 70_000))
    for method, errored in ERRORED.items():
        fake.errored_ids[method] = []
        for hp, line in errored:
            k += 1
            fake.errored_ids[method].append(_child(client, exp_id, pid, method, hp, math.nan, "errored", "search",
                                                   str(k), 0, t0 + k * 70_000, error=line))
    if confirm:
        for method, by_seed in CONFIRM.items():
            hp = max((t for t in SEARCH[method] if t[2] == "completed"), key=lambda t: t[1])[0]
            fake.winners[method] = hp
            fake.confirm_ids[method] = []
            for seed, values in by_seed.items():
                for noise, value in zip(NOISE, values, strict=True):
                    k += 1
                    fake.confirm_ids[method].append(_child(
                        client, exp_id, pid, method, hp, value, "completed", "confirm", f"c{k}", seed,
                        t0 + k * 70_000, {"label_noise": noise}))
    client.set_terminated(pid, "FINISHED", end_time=t0 + (k + 1) * 70_000)
    return fake
