"""A user's workload file, outside the project, reaches the trials on another node of a Ray cluster
through Ray's runtime environment (no install there), and its options are searched like a built-in's."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "own_workload"
SHIPPED = '''

class ShippedMoons(Moons):
    """Moons that reports whether this module was imported from Ray's runtime env (1) or elsewhere (0)."""

    def evaluate(self):
        return {**super().evaluate(), "eval/shipped": float("runtime_resources" in __file__)}
'''


def test_a_workload_file_is_shipped_to_every_node(tmp_path: Path) -> None:
    from mlflow import MlflowClient
    from ray.cluster_utils import Cluster

    from tuner.run.experiment import Experiment
    from tuner.spec import load_spec

    user = tmp_path / "user"
    user.mkdir()
    (user / "my_tasks.py").write_text((EXAMPLE / "my_tasks.py").read_text() + SHIPPED)
    spec = yaml.safe_load((EXAMPLE / "spec.yaml").read_text())
    spec.update(name="own-multinode", methods=["sgd", "sam"], scheduler={"name": "fifo"}, confirm=None,
                workload={"name": "my_tasks.py:ShippedMoons", "options": {"width": 16}},
                parameters={"lr": {"value": 0.1}, "rho": {"value": 0.05, "when": {"method": ["sam"]}},
                            "depth": {"values": [1, 2]}},  # a workload option, searched
                budget={"num_samples": 2, "max_concurrent_trials": 2, "trial_grad_evals": 600, "eval_every": 50},
                storage={"path": str(tmp_path / "results")})
    path = user / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))

    # The head (the driver's node) runs no trial: every trial runs on the other node.
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    try:
        worker = cluster.add_node(num_cpus=2).node_id
        cluster.wait_for_nodes()
        assert Experiment(load_spec(path), address=cluster.address).run() == 0
    finally:
        cluster.shutdown()

    client = MlflowClient(f"sqlite:///{tmp_path / 'results' / 'own-multinode' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("sharptune/own-multinode")
    children = [r for r in client.search_runs([exp.experiment_id]) if r.data.tags.get("sharptune.role") == "trial"]
    assert len(children) == 2
    assert [r.data.metrics.get("eval/shipped") for r in children] == [1.0, 1.0]  # imported from the runtime env
    assert all(r.data.metrics["eval/accuracy"] > 0.7 for r in children)
    assert {r.data.tags.get("sharptune.node_id") for r in children} == {worker}
