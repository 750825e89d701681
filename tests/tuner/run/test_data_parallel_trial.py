"""`resources.workers: 2` through `python -m tuner run` (issue 34): one trial = one Ray Train run on 2 gloo workers.

Real Ray (a simulated 2-node cluster, one worker on each node), real SQLite MLflow store. The trial's eval/loss and
train/loss history in MLflow must equal, report by report, the same trial run in one process at the same global
batch (`batch_size` stays the global batch, each worker keeps half); its cost counters are one trial's (not
doubled); rank 0's checkpoint lies in the trial's folder; a worker that raises ends its trial errored with its
own error in the summary while the study goes on; a worker killed mid-trial makes the trial rerun and resume
from a checkpoint (opt-in); and a request for more workers than the cluster holds is refused with one line
before anything runs.
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


FAILING = '''
import torch.distributed as dist
from dataclasses import dataclass

from tuner.workloads import option
from tuner.workloads.mnist_mlp import MnistMLP, MnistOptions


@dataclass(frozen=True)
class FailOptions(MnistOptions):
    fail_at: int = option(0, lambda v: v >= 0, "an integer >= 0 (0: never)")


class RankOneFails(MnistMLP):
    """mnist_mlp whose rank 1 raises at its `fail_at`-th batch; rank 0 would wait in the all-reduce."""

    Options = FailOptions

    def __init__(self, options, **kwargs):
        super().__init__(options, **kwargs)
        self.fail_at, self.batches = options.fail_at, 0

    def next_batch(self):
        self.batches += 1
        if self.batches == self.fail_at and dist.is_initialized() and dist.get_rank() == 1:
            raise RuntimeError("rank 1 fails on purpose at batch %d" % self.batches)
        return super().next_batch()
'''


def _trial_runs(folder: Path, name: str) -> list:
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name(f"sharptune/{name}").experiment_id])
    assert all(r.info.status != "RUNNING" for r in runs), [r.info.status for r in runs]
    return [r for r in runs if r.data.tags.get("sharptune.role") == "trial"]


def test_a_two_worker_study_on_a_two_node_cluster(tmp_path: Path) -> None:
    """README's "Beyond one machine", small: a simulated cluster of two 1-CPU nodes, each holding one worker of
    0.9 CPU (the head also holds the Tune trial's 0.01), so Ray Train must place the two workers on different
    nodes and gloo joins them across. Two trials, one at a time: `fail_at: 5` makes rank 1 raise at its 5th
    batch (rank 0 then waits in the all-reduce): that trial ends errored, with rank 1's error in the summary,
    and the study goes on; the other (`fail_at: 0`, plain mnist_mlp) runs as one process at the global batch."""
    from mlflow import MlflowClient
    from ray.cluster_utils import Cluster

    (tmp_path / "failing.py").write_text(FAILING)
    spec = _spec(tmp_path, "dp2", workers=2, cpu=0.9, parameters={
        **{k: {"value": v} for k, v in VALUES.items()}, "fail_at": {"values": [5, 0]}})
    raw = yaml.safe_load(spec.read_text())
    raw["workload"]["name"] = "failing.py:RankOneFails"
    raw["budget"]["num_samples"] = 2
    spec.write_text(yaml.safe_dump(raw))
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        nodes = {cluster.head_node.node_id, cluster.add_node(num_cpus=1).node_id}
        cluster.wait_for_nodes()
        proc = cli("run", str(spec), "--address", cluster.address, timeout=540)
    finally:
        cluster.shutdown()
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "1 completed" in proc.stdout and "1 errored" in proc.stdout, proc.stdout[-3000:]
    (summary,) = [line for line in proc.stdout.splitlines() if line.startswith("errored: sam")]
    assert "WorkerError: rank 1 of 2: RuntimeError: rank 1 fails on purpose at batch 5" in summary, summary

    folder = tmp_path / "results" / "dp2"
    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    trials = _trial_runs(folder, "dp2")  # none left RUNNING
    status = sorted((r.data.params["fail_at"], r.data.tags["sharptune.status"], r.info.status) for r in trials)
    assert status == [("0", "completed", "FINISHED"), ("5", "errored", "FAILED")], status
    (trial,) = [r for r in trials if r.data.params["fail_at"] == "0"]
    assert len(nodes) == 2 and trial.data.tags["sharptune.node_id"] in nodes  # rank 0 reported, from its node
    assert trial.data.metrics["cost/grad_evals"] == 60.0  # one trial's gradient evaluations, not 2 x 60
    want = _one_process(spec)
    got = {key: [m.value for m in sorted(client.get_metric_history(trial.info.run_id, key), key=lambda m: m.step)]
           for key in want}
    assert len(got["eval/loss"]) == len(want["eval/loss"]) == 3
    assert got["eval/loss"] == pytest.approx(want["eval/loss"], rel=1e-5, abs=1e-6)  # the global batch's steps
    assert want["eval/loss"][-1] < want["eval/loss"][0] - 1e-2  # it trained
    # train/loss is the mean of the two halves' losses: the global batch's (each worker kept a shard)
    assert got["train/loss"] == pytest.approx(want["train/loss"], rel=1e-5, abs=1e-6)
    assert list(folder.glob("train_trial_*/ray_train/checkpoint_*/trainer.pt"))  # rank 0 saved, in the trial's folder
    assert "Reporting training result" not in proc.stdout + proc.stderr  # Ray Train's line at every report

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

