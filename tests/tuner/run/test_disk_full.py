"""A full disk under the experiment's store: one line, exit 1, saved as interrupted, and a resume that
loses nothing once space is back (issue 29). The store sits on a small tmpfs that the test fills."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from e2e import ROOT, cli, smoke_spec

pytestmark = pytest.mark.slow


@pytest.fixture
def small_disk(tmp_path: Path):
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=100m", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mounted.stderr.decode().strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def test_full_disk_is_one_line_and_resume_loses_nothing(tmp_path: Path, small_disk: Path) -> None:
    from mlflow import MlflowClient
    from mlflow.entities import ViewType
    from optuna.trial import TrialState

    from tuner.run.searcher import study_trials

    path = smoke_spec(tmp_path, name="full", scheduler={"name": "fifo"}, confirm=None,
                      storage={"path": str(small_disk / "results")},
                      budget={"num_samples": 8, "max_concurrent_trials": 2, "trial_grad_evals": 300, "eval_every": 10})
    experiment = small_disk / "results" / "full"
    driver = subprocess.Popen([sys.executable, "-m", "tuner", "run", str(path)], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    filler = small_disk / "filler"
    try:
        deadline = time.monotonic() + 600
        finished: list = []
        while time.monotonic() < deadline and len(finished) < 3:
            assert driver.poll() is None
            time.sleep(0.3)
            if (experiment / "optuna.journal").exists():
                finished = [t for t in study_trials(experiment, "full") if t.state.is_finished()]
        assert len(finished) >= 3
        with open(filler, "wb") as fh:  # every byte the disk has left
            try:
                while True:
                    fh.write(b"\0" * 2**20)
                    fh.flush()
            except OSError:
                pass
        out, _ = driver.communicate(timeout=600)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert driver.returncode == 1, out[-3000:]
    assert "Traceback" not in out and "database or disk is full" not in out, out[-3000:]
    failure = [line for line in out.splitlines() if "cannot write the experiment's store" in line]
    assert len(failure) == 1 and str(experiment) in failure[0] and "MB free" in failure[0], out[-2000:]
    assert json.loads((experiment / "sharptune.json").read_text())["status"] == "interrupted"

    os.remove(filler)  # space is back
    proc = cli("resume", "full", "--storage", str(small_disk / "results"), timeout=900)  # a loaded machine is slow
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    trials = study_trials(experiment, "full")  # one study per method
    by_ray_id = {t.user_attrs.get("ray_trial_id"): t for t in trials}
    client = MlflowClient(f"sqlite:///{experiment / 'mlflow.db'}")
    exp_id = client.get_experiment_by_name("sharptune/full").experiment_id
    runs = [r for r in client.search_runs([exp_id], max_results=1000) if r.data.tags.get("sharptune.role") == "trial"]
    assert not client.search_runs([exp_id], run_view_type=ViewType.DELETED_ONLY, max_results=1000)
    assert len(trials) == len(runs) == 8
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    assert all(r.info.status != "RUNNING" for r in runs)
    for old in finished:  # what had finished before the disk filled is there, as it ended
        now = by_ray_id[old.user_attrs["ray_trial_id"]]
        assert now.state == old.state and now.values == old.values
