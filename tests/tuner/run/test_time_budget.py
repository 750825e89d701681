"""Reaching `budget.time` ends a search like any normal end (issue 29): the trials then running are
stopped and pruned (in Optuna too), the confirmation runs, the summary prints, exit 0, state completed;
`resume` then has nothing left to do."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from e2e import cli, smoke_spec

pytestmark = pytest.mark.slow


def test_time_budget_ends_the_search_normally(tmp_path: Path) -> None:
    from mlflow import MlflowClient
    from optuna.trial import TrialState

    from tuner.run.searcher import study_trials

    path = smoke_spec(tmp_path, name="timed", scheduler={"name": "fifo"},
                      confirm={"top_k": 1, "seeds": [0], "label_noise": []},
                      budget={"num_samples": 40, "max_concurrent_trials": 2, "time": "12s",
                              "trial_grad_evals": 4000, "eval_every": 10})
    proc = cli("run", str(path), timeout=400)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "time budget reached (budget.time = 12 s)" in out, out[-3000:]
    assert "interrupted" not in out
    assert "confirm:" in out  # the confirmation ran on what the budget left
    experiment = tmp_path / "results" / "timed"
    state = json.loads((experiment / "sharptune.json").read_text())
    assert state["status"] == "completed"
    trials = study_trials(experiment, "timed")
    assert len(trials) < 40
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    assert [t for t in trials if t.state == TrialState.PRUNED]  # the ones the budget stopped
    client = MlflowClient(f"sqlite:///{experiment / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("sharptune/timed").experiment_id], max_results=1000)
    assert runs and all(r.info.status != "RUNNING" for r in runs)
    pruned = [r for r in runs if r.data.tags.get("sharptune.status") == "pruned"]
    assert pruned and all(r.info.status == "FINISHED" for r in pruned)  # not KILLED: the UI draws that as a failure
    again = cli("resume", "timed", "--storage", str(tmp_path / "results"), timeout=120)
    assert again.returncode == 0 and "nothing left to do" in again.stdout, again.stdout + again.stderr
