"""`resources.workers: 2` through `python -m tuner run` (issue 34): one trial = one Ray Train run on 2 gloo workers.

Real local Ray, real SQLite MLflow store. The trial's eval/loss history in MLflow must equal, report by report,
the same trial run in one process at the same global batch (`batch_size` stays the global batch, each worker
keeps half); its cost counters are one trial's (not doubled); rank 0's checkpoint lies in the trial's folder;
a worker killed mid-trial makes the trial rerun and resume from a checkpoint; and a request for more
workers than the cluster holds is refused with one line before anything runs.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import yaml
from e2e import cli

from tuner.spec import load_spec, trial_setup
from tuner.trial.build import build_trial, trial_horizon
from tuner.trial.trainer import Trainer

pytestmark = pytest.mark.slow

VALUES = {"lr": 0.05, "rho": 0.05, "momentum": 0.0}


def _spec(folder: Path, name: str, workers: int, cpu: float, **changes: object) -> Path:
    spec = {
        "name": name, "metric": {"name": "eval/loss", "goal": "minimize"},
        "workload": {"name": "mnist_mlp", "options": {"dataset": "digits", "depth": 1, "width": 16,
                                                      "batch_size": 16, "diag_examples": 64}},
        "methods": ["sam"], "parameters": {k: {"value": v} for k, v in VALUES.items()},
        "sampler": {"name": "grid"}, "scheduler": {"name": "fifo"},
        "budget": {"num_samples": 1, "max_concurrent_trials": 1, "trial_grad_evals": 60, "eval_every": 10},
        "resources": {"cpu": cpu, "gpu": 0, "workers": workers}, "seed": 0,
        "storage": {"path": str(folder / "results")}, "max_failures": 0, **changes}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def _one_process(spec_path: Path) -> dict[str, list[float]]:
    """The same trial in this process, one worker: eval/loss and train/loss at every report."""
    setup = dataclasses.replace(trial_setup(load_spec(spec_path)), workers=1)
    values = {"method": "sam", **VALUES}
    workload, optimizer, _ = build_trial(setup, values)
    trainer = Trainer(workload, optimizer, eval_every=setup.eval_every, max_grad_evals=setup.trial_grad_evals,
                      plan=setup.eval_plan, precision=setup.precision, lr_schedule=setup.lr_schedule,
                      horizon=trial_horizon(setup, values))
    reports = list(trainer.run())
    return {key: [r[key] for r in reports if key in r] for key in ("eval/loss", "train/loss")}


def test_a_two_worker_trial_equals_one_process_at_the_global_batch(tmp_path: Path) -> None:
    spec = _spec(tmp_path, "dp2", workers=2, cpu=0.5)
    proc = cli("run", str(spec), timeout=540)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "1 completed" in proc.stdout

    from mlflow import MlflowClient
    folder = tmp_path / "results" / "dp2"
    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("sharptune/dp2").experiment_id])
    assert all(r.info.status == "FINISHED" for r in runs)
    (trial,) = [r for r in runs if r.data.tags.get("sharptune.role") == "trial"]
    assert trial.data.metrics["cost/grad_evals"] == 60.0  # one trial's gradient evaluations, not 2 x 60
    want = _one_process(spec)
    got = {key: [m.value for m in sorted(client.get_metric_history(trial.info.run_id, key), key=lambda m: m.step)]
           for key in want}
    assert len(got["eval/loss"]) == len(want["eval/loss"]) == 3
    assert got["eval/loss"] == pytest.approx(want["eval/loss"], rel=1e-5, abs=1e-6)  # the global batch's steps
    assert want["eval/loss"][-1] < want["eval/loss"][0] - 1e-2  # it trained
    # rank 0 reports the loss of its own half of each batch: not the global batch's (each worker kept a shard)
    assert all(abs(a - b) > 1e-6 for a, b in zip(got["train/loss"], want["train/loss"], strict=True))
    assert list(folder.glob("train_trial_*/ray_train/checkpoint_*/trainer.pt"))  # rank 0 saved, in the trial's folder


def test_more_workers_than_the_cluster_holds_is_refused_before_the_run(tmp_path: Path) -> None:
    proc = cli("run", str(_spec(tmp_path, "dp64", workers=64, cpu=1)), timeout=300)
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if "resources.workers" in line]
    assert len(lines) == 1 and "workers: 64" in lines[0] and "Traceback" not in proc.stderr
    assert not list((tmp_path / "results").glob("dp64/train_trial_*"))  # no trial started


@pytest.mark.opt_in  # over a minute on 2 cores: run it with `python -m pytest -m opt_in`
def test_a_killed_worker_reruns_the_trial_from_its_last_checkpoint(tmp_path: Path) -> None:
    # ASHA's rungs at 20 and 40 grad evals (optimizer steps 10 and 20) are checkpoints; one worker dies before
    # the report at 60
    spec = _spec(tmp_path, "dpkill", workers=2, cpu=0.5, max_failures=1,
                 scheduler={"name": "asha", "grace_period": 20, "reduction_factor": 2})
    marker = tmp_path / "killed.json"
    fault = json.dumps({"kill_at_grad_evals": 40, "marker": str(marker)})
    proc = cli("run", str(spec), timeout=540, env={"SHARPTUNE_FAULT": fault})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert marker.exists()  # the fault fired, in one worker

    from mlflow import MlflowClient
    folder = tmp_path / "results" / "dpkill"
    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("sharptune/dpkill").experiment_id])
    assert all(r.info.status == "FINISHED" for r in runs)
    (trial,) = [r for r in runs if r.data.tags.get("sharptune.role") == "trial"]
    assert "sharptune.retries" in trial.data.tags and trial.data.tags["sharptune.status"] == "completed"
    history = sorted((m.step, m.value) for m in client.get_metric_history(trial.info.run_id, "eval/loss"))
    assert [step for step, _ in history] == [20, 40, 60]  # one history, nothing twice
    assert [v for _, v in history] == pytest.approx(_one_process(spec)["eval/loss"], rel=1e-5, abs=1e-6)
    import torch
    steps = sorted(torch.load(path, weights_only=False)["step"]
                   for path in folder.glob("train_trial_*/ray_train/checkpoint_*/trainer.pt"))
    # the rerun resumed from a checkpoint Ray Train had registered (20 or 40 grad evals), not from step 0
    assert steps.count(10) == 1 and steps[-1] == 30 and len(steps) <= 4, steps
