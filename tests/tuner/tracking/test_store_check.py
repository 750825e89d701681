"""The store check before a run: it makes the experiment, and a fresh `run` sees a parent run already there."""

from __future__ import annotations

from pathlib import Path

from mlflow.tracking import MlflowClient

from tuner.tracking.store_check import check_tracking, has_parent_run
from tuner.tracking.tags import NAME_TAG, ROLE_TAG, experiment_name


def test_check_makes_the_experiment_and_a_parent_run_is_seen(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    exp_id = check_tracking(uri, "twice", tmp_path / "twice")
    client = MlflowClient(uri)
    assert client.get_experiment_by_name(experiment_name("twice")).experiment_id == exp_id
    assert not has_parent_run(uri, exp_id)
    client.create_run(exp_id, tags={ROLE_TAG: "trial"})  # a trial's run is not a parent
    assert not has_parent_run(uri, exp_id)
    client.create_run(exp_id, tags={ROLE_TAG: "parent", NAME_TAG: "twice"})
    assert has_parent_run(uri, exp_id)
    assert check_tracking(uri, "twice", tmp_path / "twice") == exp_id  # the same experiment, found again
