"""Resume after `kill -9` of the driver, with the race made certain (issue 29).

Ray saves its experiment state on a clock; trials that finish between its last save and the kill are
finished in the Optuna journal and in MLflow, but not in Ray's state. Here Ray saves once, at the start
(`TUNE_GLOBAL_CHECKPOINT_S` set far out), so every trial that finishes before the kill is such a trial:
either known to Ray as running, or asked after the save and unknown to it. `resume` must then:

- exit 0, with no traceback;
- not train a finished trial again: it ends with the journal's record, replayed (`sharptune/replayed`);
- keep every finished trial's MLflow run (none soft-deleted), none left RUNNING;
- leave Optuna, Ray and MLflow with the same trials, `num_samples` of each.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from e2e import ROOT, cli, kill_driver, smoke_spec

pytestmark = pytest.mark.slow

NUM_SAMPLES = 10


def _mlflow_runs(experiment: Path, name: str) -> tuple[list, list]:
    from mlflow import MlflowClient
    from mlflow.entities import ViewType

    client = MlflowClient(f"sqlite:///{experiment / 'mlflow.db'}")
    exp = client.get_experiment_by_name(f"sharptune/{name}")
    active = client.search_runs([exp.experiment_id], max_results=1000)
    deleted = client.search_runs([exp.experiment_id], run_view_type=ViewType.DELETED_ONLY, max_results=1000)
    return active, deleted


def test_resume_after_kill_loses_and_reruns_nothing(tmp_path: Path) -> None:
    from optuna.trial import TrialState
    from ray.tune import ExperimentAnalysis

    from tuner.run.searcher import load_studies, study_trials

    path = smoke_spec(tmp_path, name="race", scheduler={"name": "fifo"}, confirm=None,
                      budget={"num_samples": NUM_SAMPLES, "max_concurrent_trials": 2, "trial_grad_evals": 400,
                              "eval_every": 10})
    log_path = tmp_path / "driver.log"
    env = {**os.environ, "TUNE_GLOBAL_CHECKPOINT_S": "100000"}  # Ray saves its state at the start only
    with open(log_path, "w") as log:
        driver = subprocess.Popen([sys.executable, "-m", "tuner", "run", str(path)], cwd=ROOT, stdout=log,
                                  stderr=subprocess.STDOUT, text=True, env=env)
        experiment = tmp_path / "results" / "race"
        try:
            deadline = time.monotonic() + 240
            finished: list = []
            while time.monotonic() < deadline and len(finished) < 5:
                assert driver.poll() is None, log_path.read_text()[-3000:]
                time.sleep(0.5)
                if (experiment / "optuna.journal").exists():
                    finished = [t for t in study_trials(experiment, "race") if t.state.is_finished()]
            assert len(finished) >= 5, log_path.read_text()[-3000:]
            kill_driver(driver)
        finally:
            if driver.poll() is None:
                driver.kill()

    before = {t.user_attrs.get("ray_trial_id") or f"optuna-{i}": t
              for i, t in enumerate(study_trials(experiment, "race"))}
    done_before = {n: t for n, t in before.items() if t.state.is_finished()}
    active_before, _ = _mlflow_runs(experiment, "race")
    runs_before = {r.data.tags["sharptune.trial_id"]: r.info.run_id for r in active_before
                   if r.data.tags.get("sharptune.role") == "trial"}
    # the race is real: some trials the journal finished are not finished in Ray's saved state
    saved = ExperimentAnalysis(str(experiment))
    saved_done = {t.trial_id for t in saved.trials if t.status == "TERMINATED"}
    assert {t.user_attrs["ray_trial_id"] for t in done_before.values()} - saved_done

    proc = cli("resume", "race", "--storage", str(tmp_path / "results"), timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "Traceback" not in proc.stdout + proc.stderr

    assert set(load_studies(experiment, "race")) == {"sgd", "sam"}  # one study per method, each resumed
    trials = study_trials(experiment, "race")
    by_ray_id = {t.user_attrs.get("ray_trial_id"): t for t in trials}
    ray_trials = ExperimentAnalysis(str(experiment)).trials
    active, deleted = _mlflow_runs(experiment, "race")
    children = [r for r in active if r.data.tags.get("sharptune.role") == "trial"]
    parents = [r for r in active if r.data.tags.get("sharptune.role") == "parent"]
    # one set of trials in all three
    assert len(trials) == len(ray_trials) == len(children) == NUM_SAMPLES, \
        (len(trials), len(ray_trials), len(children))
    assert {r.data.tags["sharptune.trial_id"] for r in children} == {t.trial_id for t in ray_trials}
    assert not deleted, [r.data.tags for r in deleted]
    assert all(r.info.status != "RUNNING" for r in children + parents)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    # finished trials kept their outcome, their MLflow run, and were replayed, not trained again
    by_id = {t.trial_id: t for t in ray_trials}
    for key, old in done_before.items():
        now = by_ray_id[key]
        assert now.state == old.state and now.values == old.values, key
        ray_id = old.user_attrs["ray_trial_id"]
        adopted = [r for r in children if r.data.tags.get("sharptune.adopted_from") == ray_id]
        run = adopted[0] if adopted else next(r for r in children if r.data.tags["sharptune.trial_id"] == ray_id)
        assert run.info.run_id == runs_before[ray_id]  # the same run, kept
        assert run.data.tags["sharptune.status"] == old.user_attrs["sharptune_status"]
        trial = by_id[run.data.tags["sharptune.trial_id"]]
        if ray_id not in saved_done:
            assert trial.last_result.get("sharptune/replayed") == 1.0, (ray_id, trial.last_result)
