"""`python -m tuner run` end to end on the smoke spec: real local Ray, real SQLite MLflow store.

One run (about 45 s on 2 cores) feeds every check: one parent and exactly one child per trial with
metric histories, ASHA's early stops told to Optuna as PRUNED, nothing left RUNNING, the same name
refused a second time, `list`, and a tracking store that cannot be reached failing before Ray starts.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import yaml
from e2e import cli, smoke_spec

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = tmp_path_factory.mktemp("smoke")
    spec = smoke_spec(folder)
    start = time.monotonic()
    proc = cli("run", str(spec))
    return {"proc": proc, "spec": spec, "dir": folder / "results" / "smoke", "seconds": time.monotonic() - start}


def mlflow_runs(experiment_dir: Path, name: str) -> list:
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{experiment_dir / 'mlflow.db'}")
    exp = client.get_experiment_by_name(f"sharptune/{name}")
    return client, client.search_runs([exp.experiment_id], max_results=1000)


def test_smoke_runs_and_prints_summary(smoke: dict) -> None:
    proc = smoke["proc"]
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.lstrip().startswith(("preflight: ", "sharptune: smoke"))  # a short header, not the config
    assert "summary of smoke" in proc.stdout and "MLflow: sqlite:///" in proc.stdout
    assert "search: 8/8 done" in proc.stdout  # the last progress block
    resolved = yaml.safe_load((smoke["dir"] / "resolved_spec.yaml").read_text())  # the full config, in a file
    assert set(resolved["space"]) == {"sgd", "sam"} and "resolved config" not in proc.stdout


def test_mlflow_one_parent_one_child_per_trial(smoke: dict) -> None:
    client, runs = mlflow_runs(smoke["dir"], "smoke")
    parents = [r for r in runs if r.data.tags.get("sharptune.role") == "parent"]
    children = [r for r in runs if r.data.tags.get("sharptune.role") == "trial"]
    assert len(parents) == 1
    assert len(children) == 8
    assert len({r.data.tags["sharptune.trial_id"] for r in children}) == 8
    assert all(r.info.status != "RUNNING" for r in runs)
    assert parents[0].data.params["metric.name"] == "eval/loss"
    for r in children:
        tags = r.data.tags
        assert tags["mlflow.parentRunId"] == parents[0].info.run_id
        assert tags["sharptune.phase"] == "search" and tags["sharptune.method"] in ("sgd", "sam")
        assert tags["sharptune.status"] in ("completed", "pruned")
        assert r.data.params["method"] == tags["sharptune.method"]
        assert ("rho" in r.data.params) == (tags["sharptune.method"] == "sam")  # conditional space
        history = client.get_metric_history(r.info.run_id, "eval/loss")
        steps = [m.step for m in history]
        assert steps and steps == sorted(set(steps)), steps  # step = cost/grad_evals, no duplicates
        if tags["sharptune.status"] == "completed":
            assert max(steps) >= 200 and r.info.status == "FINISHED"
        else:
            assert float(tags["sharptune.pruned_at"]) < 200
    artifacts = [a.path for a in client.list_artifacts(parents[0].info.run_id)]
    assert "spec.yaml" in artifacts


def test_asha_stops_trials_and_optuna_sees_pruned(smoke: dict) -> None:
    from optuna.trial import TrialState

    from tuner.run.searcher import load_studies, study_trials

    assert set(load_studies(smoke["dir"], "smoke")) == {"sgd", "sam"}  # split per method, the default
    trials = study_trials(smoke["dir"], "smoke")
    states = [t.state for t in trials]
    assert len(states) == 8
    assert TrialState.PRUNED in states, states
    assert TrialState.RUNNING not in states
    _, runs = mlflow_runs(smoke["dir"], "smoke")
    by_id = {r.data.tags.get("sharptune.trial_id"): r.data.tags.get("sharptune.status") for r in runs}
    for t in trials:  # Optuna and MLflow agree on how each trial ended
        expected = {"completed": TrialState.COMPLETE, "pruned": TrialState.PRUNED}[by_id[t.user_attrs["ray_trial_id"]]]
        assert t.state == expected
        if t.state == TrialState.PRUNED:
            assert t.intermediate_values  # the value at the budget where ASHA stopped it


def test_same_name_twice_is_refused(smoke: dict) -> None:
    proc = cli("run", str(smoke["spec"]), timeout=60)
    assert proc.returncode == 2
    assert "resume" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_list_and_resume_of_completed(smoke: dict) -> None:
    proc = cli("list", "--storage", str(smoke["dir"].parent), timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "smoke" in proc.stdout and "completed" in proc.stdout
    assert "sgd 4/4, sam 4/4" in proc.stdout  # each method's budget, all used (split per method)
    client, runs = mlflow_runs(smoke["dir"], "smoke")
    parent = next(r for r in runs if r.data.tags.get("sharptune.role") == "parent")
    assert parent.data.metrics["budget/sam/used"] == 4 and parent.data.metrics["budget/sam/left"] == 0
    proc = cli("resume", "smoke", "--storage", str(smoke["dir"].parent), timeout=60)
    assert proc.returncode == 0 and "is completed: nothing left to do" in proc.stdout, proc.stderr


def test_unreachable_tracking_fails_fast(tmp_path: Path) -> None:
    spec = smoke_spec(tmp_path, name="offline", tracking={"uri": "http://127.0.0.1:9"})
    proc = cli("run", str(spec), timeout=120)
    assert proc.returncode == 2, proc.stderr  # the user's setting: start the server or fix tracking.uri
    assert "cannot be reached or written" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "results" / "offline" / "tuner.pkl").exists()  # no trial, no Ray run


def test_tracking_path_blocked_by_a_file_fails_fast(tmp_path: Path) -> None:
    """A store whose folder cannot be made (a file is in the way): unwritable even for root."""
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("x")
    spec = smoke_spec(tmp_path, name="blocked", tracking={"uri": f"sqlite:///{blocker}/mlflow.db"})
    proc = cli("run", str(spec), timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert "MLflow" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "results" / "blocked" / "tuner.pkl").exists()


def test_unwritable_tracking_path_fails_fast(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as a user that can write anywhere")
        spec = smoke_spec(tmp_path, name="readonly", tracking={"uri": f"sqlite:///{locked}/db/mlflow.db"})
        proc = cli("run", str(spec), timeout=120)
        assert proc.returncode == 1 and "MLflow" in proc.stderr
    finally:
        locked.chmod(0o700)


def test_the_printed_winner_is_the_tagged_winner(smoke: dict) -> None:
    """`run` prints the winners from the same computation that tags them in MLflow (rank 1 first)."""
    lines = smoke["proc"].stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("summary of smoke"))
    columns = next(i for i in range(header, len(lines)) if lines[i].startswith("method "))
    printed = lines[columns + 1].split()[0]
    _, runs = mlflow_runs(smoke["dir"], "smoke")
    parent = next(r for r in runs if r.data.tags.get("sharptune.role") == "parent")
    assert parent.data.tags["sharptune.winner"] == printed
