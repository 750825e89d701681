"""`python -m tuner ui` argument handling that needs no server (the served UI is in test_browser.py)."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from fake_experiment import FakeExperiment
from mlflow.tracking import MlflowClient

from tuner.cli import main
from tuner.commands.ui import runs_url
from tuner.tracking.ui import EXPERIMENT_KIND_TAG, RUNS_VIEW, VIEW_TAG_PREFIX


def test_ui_needs_a_known_experiment(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ui", "--storage", str(tmp_path)]) == 2
    assert main(["ui", "ghost", "--storage", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "choose an experiment" in err[0] and "no experiment 'ghost'" in err[1]


def test_ui_refuses_a_busy_port(fake_experiment: FakeExperiment, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["ui", "--storage", str(fake_experiment.storage), "--port", str(port)]) == 2
    assert f"port {port} on 127.0.0.1 is in use" in capsys.readouterr().err


def test_ui_tags_an_older_experiment_with_the_runs_view(fake_experiment: FakeExperiment) -> None:
    """An experiment made before the tags existed gets the model-training kind and the saved view."""
    client = MlflowClient(fake_experiment.tracking_uri)
    exp_id = client.get_experiment_by_name(f"sharptune/{fake_experiment.name}").experiment_id
    for key in (EXPERIMENT_KIND_TAG, VIEW_TAG_PREFIX + RUNS_VIEW):
        if key in client.get_experiment(exp_id).tags:
            client.delete_experiment_tag(exp_id, key)
    with socket.socket() as busy:  # stops right after the experiment is resolved: no server started
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        assert main(["ui", fake_experiment.name, "--storage", str(fake_experiment.storage),
                     "--port", str(busy.getsockname()[1])]) == 2
    tags = client.get_experiment(exp_id).tags
    assert tags[EXPERIMENT_KIND_TAG] == "custom_model_development"
    view = json.loads(tags[VIEW_TAG_PREFIX + RUNS_VIEW])
    state = json.loads(view["state"])
    assert view["name"] == "sharptune trials by eval/accuracy, per phase" and isinstance(view["createdAt"], int)
    assert state["groupBy"]["groupByKeys"] == [{"mode": "tag", "groupByData": "sharptune.phase"}]
    assert state["orderByKey"] == "metrics.`eval/accuracy`" and state["orderByAsc"] is False  # maximize
    assert state["selectedColumns"][:2] == ["metrics.`eval/accuracy`", "params.`method`"]
    assert runs_url("http://127.0.0.1:5000/", exp_id) == (
        f"http://127.0.0.1:5000/#/experiments/{exp_id}/runs?workflowType=machine_learning"
        f"&viewStateShareKey={RUNS_VIEW}")


def test_ui_writes_the_comparison_of_an_older_finished_experiment(fake_experiment: FakeExperiment) -> None:
    """A finished experiment made before the comparison existed gets it on its parent run from `ui`."""
    client = MlflowClient(fake_experiment.tracking_uri)
    parent = fake_experiment.parent_id
    folder = Path(client.get_run(parent).info.artifact_uri.removeprefix("file://"))
    for name in ("comparison.md", "comparison.html"):  # as before the comparison existed (`ui` may have run)
        (folder / name).unlink(missing_ok=True)
    if "mlflow.note.content" in client.get_run(parent).data.tags:
        client.delete_tag(parent, "mlflow.note.content")
    assert "comparison.html" not in {a.path for a in client.list_artifacts(parent)}
    with socket.socket() as busy:  # stops right after the experiment is resolved: no server started
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        assert main(["ui", fake_experiment.name, "--storage", str(fake_experiment.storage),
                     "--port", str(busy.getsockname()[1])]) == 2
    assert {"comparison.md", "comparison.html"} <= {a.path for a in client.list_artifacts(parent)}
    note = client.get_run(parent).data.tags["mlflow.note.content"]
    # sam's interval has the highest lower end (sgd_ire's mean is higher, its interval far wider)
    assert "| 1 | sam |" in note and "| 3 | sgd_ire |" in note and "Ranked by the lower end" in note


@pytest.mark.slow
def test_ui_host_answers_this_machines_name_and_the_allowed_hosts_only(fake_experiment: FakeExperiment,
                                                                        tmp_path: Path) -> None:
    """`--host 0.0.0.0` does what its warning says: the server answers requests addressed to this machine's
    name (MLflow alone answers 403), to names given with --allowed-hosts, and still refuses any other
    name (DNS rebinding). Every request goes to 127.0.0.1; only the Host header changes."""
    import signal
    import subprocess
    import sys
    import time
    import urllib.error
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tmp_path / "ui.log"
    with log.open("w") as out:
        ui = subprocess.Popen([sys.executable, "-m", "tuner", "ui", fake_experiment.name, "--storage",
                               str(fake_experiment.storage), "--host", "0.0.0.0", "--port", str(port),
                               "--allowed-hosts", "lab.example.org"], stdout=out, stderr=subprocess.STDOUT,
                              start_new_session=True)

    def status(host: str) -> int:
        request = urllib.request.Request(f"http://127.0.0.1:{port}/", headers={"Host": host})
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return answer.status
        except urllib.error.HTTPError as exc:
            return exc.code

    try:
        deadline = time.monotonic() + 150
        while "MLflow UI:" not in log.read_text() and time.monotonic() < deadline and ui.poll() is None:
            time.sleep(0.5)
        assert "MLflow UI:" in log.read_text(), log.read_text()[-3000:]
        assert f"reachable from other machines as {socket.gethostname()}" in log.read_text()
        assert status(f"{socket.gethostname()}:{port}") == 200
        assert status("lab.example.org") == 200
        assert status(f"127.0.0.1:{port}") == 200
        assert status("evil.example.com") == 403
    finally:
        ui.send_signal(signal.SIGINT)
        try:
            ui.wait(timeout=60)
        except subprocess.TimeoutExpired:
            ui.kill()


@pytest.mark.parametrize("command", ["report", "export", "ui", "dashboard", "resume"])
def test_names_cannot_leave_the_storage_folder(command: str, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "store").mkdir()
    for name in ("../../etc", "/etc", "a/../../b"):
        assert main([command, name, "--storage", str(tmp_path / "store")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"{name!r} is not an experiment name" in err[0], err
