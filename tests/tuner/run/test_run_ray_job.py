"""`ray job submit --working-dir . -- python -m tuner run spec.yaml` against a head node started with
`ray start --head` (its own temp folder and ports; stopped at the end by process id, never `ray stop`,
which would end every Ray on the machine). The job's driver attaches through RAY_ADDRESS, which the
job supervisor sets; the package travels in the working dir. Ray's token authentication is on, with one
token (RAY_AUTH_TOKEN) given to the head and to `ray job submit`, as the README says."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
from e2e import ROOT, descendants, smoke_spec
from mlflow_server import SLOW_START, free_port

# About 5 minutes on 2 cores (the head's job server and agents start slowly, then the job runs the
# smoke spec), so it is left out of the default run: `python -m pytest -m opt_in`.
pytestmark = [pytest.mark.slow, pytest.mark.opt_in]


def test_ray_job_submit_runs_the_spec(tmp_path: Path) -> None:
    temp = Path(tempfile.mkdtemp(prefix="rjob", dir="/tmp"))  # Ray's socket paths must stay short
    dashboard = free_port()
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16)}  # README step 1: one token for all
    ports = {"--port": free_port(), "--dashboard-port": dashboard, "--dashboard-agent-listen-port": free_port(),
             "--dashboard-agent-grpc-port": free_port(),
             "--metrics-export-port": free_port(), "--runtime-env-agent-port": free_port(),
             "--node-manager-port": free_port(), "--object-manager-port": free_port()}
    head = subprocess.Popen(
        ["ray", "start", "--head", "--block", "--num-cpus=2", "--num-gpus=0", "--include-dashboard=true",
         "--dashboard-host=127.0.0.1", "--node-ip-address=127.0.0.1", f"--temp-dir={temp}",
         "--disable-usage-stats", *(f"{k}={v}" for k, v in ports.items())],
        stdout=open(tmp_path / "head.log", "w"), stderr=subprocess.STDOUT, start_new_session=True,  # noqa: SIM115
        env={**os.environ, **SLOW_START, **auth})
    address = f"http://127.0.0.1:{dashboard}"
    started: list[int] = []
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            assert head.poll() is None, (tmp_path / "head.log").read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"{address}/api/version", timeout=2):
                    break
            except OSError:
                time.sleep(0.5)
        started = descendants(head.pid)
        path = smoke_spec(tmp_path, name="job", scheduler={"name": "fifo"},
                          budget={"num_samples": 2, "max_concurrent_trials": 2, "trial_grad_evals": 200,
                                  "eval_every": 10})
        env = {**{k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}, **auth}
        proc = subprocess.run(["ray", "job", "submit", "--address", address, "--working-dir", ".", "--",
                               "python", "-m", "tuner", "run", str(path)],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=480)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
        assert "summary of job" in proc.stdout and "succeeded" in proc.stdout, proc.stdout[-3000:]
        from mlflow import MlflowClient

        client = MlflowClient(f"sqlite:///{tmp_path / 'results' / 'job' / 'mlflow.db'}")
        exp = client.get_experiment_by_name("sharptune/job")
        children = client.search_runs([exp.experiment_id], "tags.`sharptune.role` = 'trial'")
        assert len(children) == 2 and all(r.info.status == "FINISHED" for r in children)
    finally:
        started += [p for p in descendants(head.pid) if p not in started]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(60)
        except subprocess.TimeoutExpired:
            head.kill()
        time.sleep(2)
        for pid in started:  # only what this head started, by id
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(temp, ignore_errors=True)
