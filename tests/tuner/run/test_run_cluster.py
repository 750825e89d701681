"""The cluster path for real (issue 16): one `mlflow server` (SQLite backend, proxied artifacts, basic
auth) and one two-node `ray.cluster_utils.Cluster` (a 1-CPU head; a worker with 4 CPUs and 2 logical
GPUs, no real GPU) shared by the module.

- the smoke spec with `tracking.uri: http://...`: the driver SIGKILLed after its first finished trial,
  `resume` ends it; one parent, one child per trial with its full history, none RUNNING; `report`
  logs its HTML to the parent on the server; `export` reads the server; no local store appears;
- the server stopped mid-run and started again: the study goes on, nothing lost, nothing doubled;
  stopped for good: exit 1 with one line, and `resume` writes the finished trials once it is back;
- `resources: {gpu: 0.5}`: 4 trials at once on the 2-GPU node, each tagged with the GPU Ray gave it,
  training on CPU; a request no node holds, an unreachable server, a wrong password: one line, exit 2.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from e2e import ROOT, smoke_spec
from mlflow_server import PASSWORD, SLOW_START, USER, MlflowServer

pytestmark = pytest.mark.slow

FIFO = {"name": "fifo"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")}
    os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"] = USER, PASSWORD
    srv = MlflowServer(tmp_path_factory.mktemp("mlflow-server"))
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="module")
def cluster():
    from ray.cluster_utils import Cluster

    for key, value in SLOW_START.items():  # a busy machine starts Ray's agents slowly; don't abort the node
        os.environ.setdefault(key, value)
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        c.add_node(num_cpus=4, num_gpus=2)
        c.wait_for_nodes()
        yield c
    finally:
        c.shutdown()


def tuner_main(*args: str) -> int:
    from tuner.cli import main

    return main(list(args))


def runs(uri: str, name: str) -> tuple[list, list]:
    """(parents, trial runs) of `sharptune/<name>` on the server."""
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(f"sharptune/{name}")
    found = client.search_runs([exp.experiment_id], max_results=1000)
    return ([r for r in found if r.data.tags.get("sharptune.role") == "parent"],
            [r for r in found if r.data.tags.get("sharptune.role") == "trial"])


def assert_complete(uri: str, name: str, trials: int, budget: int, every: int = 10) -> list:
    """One finished parent; one run per trial, each with every step of its history; none RUNNING."""
    from mlflow import MlflowClient

    parents, children = runs(uri, name)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED", [p.info.status for p in parents]
    ids = [r.data.tags["sharptune.trial_id"] for r in children]
    assert len(ids) == len(set(ids)) == trials, ids
    client = MlflowClient(uri)
    for run in children:
        assert run.info.status == "FINISHED" and run.data.tags["sharptune.status"] == "completed", run.data.tags
        steps = sorted(m.step for m in client.get_metric_history(run.info.run_id, "cost/grad_evals"))
        grain = every * (2 if run.data.params["method"] == "sam" else 1)  # a SAM step costs two grad evals
        assert steps == list(range(grain, budget + 1, grain)), (run.info.run_id, steps)  # no gap, no double
        assert len(client.get_metric_history(run.info.run_id, "train/loss")) == len(steps)
    return children


def when_trials_exist(uri: str, name: str, then, count: int = 1) -> threading.Thread:
    """Call `then()` from a thread once `count` trial runs of `name` are on the server."""
    from mlflow import MlflowClient

    def watch() -> None:
        client = MlflowClient(uri)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            exp = client.get_experiment_by_name(f"sharptune/{name}")
            if exp is not None and len(client.search_runs([exp.experiment_id],
                                                          "tags.`sharptune.role` = 'trial'")) >= count:
                break
            time.sleep(0.3)
        then()
    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_run_killed_resumed_reported_exported_over_http(server: MlflowServer, cluster, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture) -> None:
    from mlflow import MlflowClient

    local_mlruns = (ROOT / "mlruns").exists()
    path = smoke_spec(tmp_path, name="remote", tracking={"uri": server.uri}, scheduler=FIFO,
                      budget={"num_samples": 4, "max_concurrent_trials": 2, "trial_grad_evals": 300, "eval_every": 10})
    log_path = tmp_path / "driver.log"
    with open(log_path, "w") as log:
        driver = subprocess.Popen([sys.executable, "-m", "tuner", "run", str(path), "--address", cluster.address],
                                  cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)  # Ray gives workers its cwd
        try:
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline and " completed at " not in log_path.read_text():
                assert driver.poll() is None, log_path.read_text()[-3000:]
                time.sleep(0.3)
            assert " completed at " in log_path.read_text()
            driver.send_signal(signal.SIGKILL)  # Ray ends the job's trial actors itself
            driver.wait(30)
        finally:
            if driver.poll() is None:
                driver.kill()
    results = tmp_path / "results"
    assert tuner_main("resume", "remote", "--storage", str(results), "--address", cluster.address) == 0
    children = assert_complete(server.uri, "remote", trials=4, budget=300)
    assert {r.data.tags["sharptune.device"] for r in children} == {"cpu"}
    assert {r.data.tags["sharptune.gpu_ids"] for r in children} == {""}

    capsys.readouterr()
    assert tuner_main("report", "remote", "--tracking-uri", server.uri, "--storage", str(results)) == 0
    parents, _ = runs(server.uri, "remote")
    artifacts = [a.path for a in MlflowClient(server.uri).list_artifacts(parents[0].info.run_id, "report")]
    assert "report/report.html" in artifacts, artifacts
    out = tmp_path / "winner.yaml"
    assert tuner_main("export", "remote", "--tracking-uri", server.uri, "--storage", str(results), "-o", str(out)) == 0
    assert "method:" in out.read_text() and "provenance:" in out.read_text()

    experiment = results / "remote"
    assert not (experiment / "mlflow.db").exists() and not (experiment / "artifacts").exists()
    assert not list(tmp_path.rglob("mlruns")) and not list(tmp_path.rglob("*.db"))
    assert (ROOT / "mlruns").exists() == local_mlruns  # nor in the drivers' working folder


@pytest.mark.opt_in  # a minute; the outage rule alone: tests/tuner/tracking/test_outage.py
def test_server_goes_away_and_comes_back(server: MlflowServer, cluster, tmp_path: Path,
                                         capsys: pytest.CaptureFixture) -> None:
    path = smoke_spec(tmp_path, name="outage", tracking={"uri": server.uri}, scheduler=FIFO,
                      budget={"num_samples": 4, "max_concurrent_trials": 2, "trial_grad_evals": 600, "eval_every": 10})
    watcher = when_trials_exist(server.uri, "outage", lambda: (server.stop(), time.sleep(3), server.start()))
    code = tuner_main("run", str(path), "--address", cluster.address)
    watcher.join(300)
    out = capsys.readouterr()
    text = out.out + out.err
    assert code == 0, text[-3000:]
    assert "unreachable" in text and ("is back after" in text or "from Ray's records" in text), text[-3000:]
    assert_complete(server.uri, "outage", trials=4, budget=600)


@pytest.mark.opt_in  # minutes; the outage is also covered by test_server_goes_away_and_comes_back
def test_server_stays_down_then_resume(server: MlflowServer, cluster, tmp_path: Path,
                                       capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHARPTUNE_MLFLOW_WAIT_S", "2")
    path = smoke_spec(tmp_path, name="down", tracking={"uri": server.uri}, scheduler=FIFO,
                      budget={"num_samples": 3, "max_concurrent_trials": 2, "trial_grad_evals": 300, "eval_every": 10})
    watcher = when_trials_exist(server.uri, "down", server.stop)
    try:
        code = tuner_main("run", str(path), "--address", cluster.address)
        watcher.join(60)
        err = capsys.readouterr().err
        assert code == 1, err[-3000:]
        failed = [line for line in err.splitlines() if line.startswith("failed:")]
        assert len(failed) == 1 and "still unreachable" in failed[0] and "resume" in failed[0], err[-2000:]
        state = json.loads((tmp_path / "results" / "down" / "sharptune.json").read_text())
        assert state["status"] == "interrupted"
    finally:
        server.start()
    assert tuner_main("resume", "down", "--storage", str(tmp_path / "results"), "--address", cluster.address) == 0
    assert_complete(server.uri, "down", trials=3, budget=300)


@pytest.mark.opt_in  # minutes; the placement rule alone: tests/tuner/run/test_placement.py
def test_gpu_shares_run_four_at_once_on_cpu(server: MlflowServer, cluster, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUNE_MAX_PENDING_TRIALS_PG", "4")  # the four actors start together, not one by one
    path = smoke_spec(tmp_path, name="gpus", tracking={"uri": server.uri}, scheduler=FIFO,
                      resources={"cpu": 0.5, "gpu": 0.5},
                      budget={"num_samples": 4, "max_concurrent_trials": 4, "trial_grad_evals": 4000,
                              "eval_every": 100})
    assert tuner_main("run", str(path), "--address", cluster.address) == 0
    children = assert_complete(server.uri, "gpus", trials=4, budget=4000, every=100)
    assert Counter(r.data.tags["sharptune.gpu_ids"] for r in children) == {"0": 2, "1": 2}
    assert {r.data.tags["sharptune.device"] for r in children} == {"cpu"}  # no CUDA here: device auto -> CPU
    assert len({r.data.tags["sharptune.node_id"] for r in children}) == 1  # the node that has GPUs
    assert max(r.info.start_time for r in children) < min(r.info.end_time for r in children)  # all 4 at once


def test_bad_cluster_inputs_refused_before_anything_starts(server: MlflowServer, cluster, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    big = smoke_spec(tmp_path, name="toobig", tracking={"uri": server.uri}, resources={"cpu": 1, "gpu": 3})
    assert tuner_main("run", str(big), "--address", cluster.address) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "gpu: 3" in err[0] and "4 CPU, 2 GPU" in err[0] and "1 CPU, 0 GPU" in err[0], err
    assert not (tmp_path / "results" / "toobig").exists()

    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "wrong")
    wrong = smoke_spec(tmp_path, name="wrongpw", tracking={"uri": server.uri})
    assert tuner_main("run", str(wrong), "--address", cluster.address) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "refused the credentials (HTTP 401)" in err[0] and "MLFLOW_TRACKING_PASSWORD" in err[0]
    assert not (tmp_path / "results" / "wrongpw").exists()
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", PASSWORD)
    parents, children = runs(server.uri, "toobig")
    assert not parents and not children  # the refused request left no run on the server
