"""Multi-node: a head and a worker node on this machine (Ray's own `cluster_utils.Cluster`), one CPU
each, two trials at a time: `--address` attaches to the cluster and trials run on both nodes."""

from __future__ import annotations

from pathlib import Path

import pytest
from e2e import smoke_spec

pytestmark = pytest.mark.slow


def test_trials_run_on_both_nodes(tmp_path: Path) -> None:
    from mlflow import MlflowClient
    from ray.cluster_utils import Cluster

    from tuner.run.experiment import Experiment
    from tuner.spec import load_spec

    path = smoke_spec(tmp_path, name="multinode", scheduler={"name": "fifo"},
                      budget={"num_samples": 4, "max_concurrent_trials": 2, "trial_grad_evals": 8000, "eval_every": 10})

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        assert Experiment(load_spec(path), address=cluster.address).run() == 0
    finally:
        cluster.shutdown()

    client = MlflowClient(f"sqlite:///{tmp_path / 'results' / 'multinode' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("sharptune/multinode")
    children = [r for r in client.search_runs([exp.experiment_id]) if r.data.tags.get("sharptune.role") == "trial"]
    assert len(children) == 4
    nodes = [r.data.tags.get("sharptune.node_id") for r in children]
    assert None not in nodes and len(set(nodes)) == 2, nodes  # long enough trials: two run at once
