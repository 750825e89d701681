"""The pieces `tuner ui` adds to MLflow's server, without a browser: the classic-mode landing page, the
launcher's swap of the app uvicorn serves, and the comparison table's cells and rounding."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import pandas as pd
import pytest

from tuner.commands.ui import landing_url
from tuner.run.comparison import comparison_markdown, comparison_rows
from tuner.tracking.parent_page import round_metrics, round_sig


@pytest.fixture(scope="module")
def web():  # MLflow's Flask app with sharptune's page (importing it builds MLflow's app: a few seconds)
    from tuner.tracking.app import flask_app

    return flask_app.test_client()


def test_landing_page_stores_the_classic_ui_then_opens_the_comparison(web) -> None:
    url = landing_url("http://127.0.0.1:5000/", "3", "a1b2", "comparison.html")
    assert url == "http://127.0.0.1:5000/sharptune/open?experiment=3&run=a1b2&artifact=comparison.html"
    page = web.get(url.removeprefix("http://127.0.0.1:5000")).get_data(as_text=True)
    assert 'localStorage.setItem("mlflow.workflowType_v1","\\"machine_learning\\"")' in page
    assert '"/experiments/3/runs/a1b2/artifacts/comparison.html?workflowType=machine_learning"' in page
    runs = web.get("/sharptune/open?experiment=3").get_data(as_text=True)  # no parent run yet: the runs view
    assert '"/experiments/3/runs?workflowType=machine_learning&viewStateShareKey=sharptune-trials"' in runs


@pytest.mark.parametrize("query", ["", "experiment=1%27);alert(1)//", "experiment=1&run=../x",
                                   "experiment=1&artifact=comparison.html", "experiment=1&run=ab&artifact=../../x",
                                   "experiment=1&run=ab&artifact=%22%3E%3Cscript%3E"])
def test_landing_page_takes_only_ids(web, query: str) -> None:
    answer = web.get(f"/sharptune/open?{query}")
    assert answer.status_code == 400 and "<script" not in answer.get_data(as_text=True)


def test_launcher_makes_mlflow_serve_our_app(monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow.server as server

    from tuner.tracking import server as mlflow_server

    monkeypatch.setattr(server, "_build_uvicorn_command", server._build_uvicorn_command)  # restored after
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    mlflow_server.patch_uvicorn_command()
    cmd = server._build_uvicorn_command(None, "127.0.0.1", 5000, 1, mlflow_server.MLFLOW_APP)
    assert cmd[-1] == "tuner.tracking.app:app" and cmd[cmd.index("--port") + 1] == "5000"
    with pytest.raises(SystemExit, match="needs updating"):  # an MLflow that starts something else: said so
        server._build_uvicorn_command(None, "127.0.0.1", 5000, 1, "other.app:app")
    # the uvicorn process imports `tuner` from this checkout, whatever folder the user started `ui` in
    code = "import os, tuner; print(os.path.dirname(tuner.__file__))"
    probe = subprocess.run([sys.executable, "-c", code], cwd="/", capture_output=True, text=True,
                           env={"PYTHONPATH": os.environ["PYTHONPATH"]})
    assert probe.stdout.strip() == str(mlflow_server.Path(mlflow_server.__file__).resolve().parents[1])


def test_round_sig_keeps_four_significant_digits() -> None:
    assert round_sig(0.9252500000000001) == 0.9253
    assert round_sig(2.1165033050360726) == 2.117 and round_sig(5.554354487458113e-08) == 5.554e-08
    assert round_sig(120.0) == 120.0 and round_sig(123456.0) == 123456.0  # counts stay whole
    assert math.isnan(round_sig(math.nan)) and round_sig(math.inf) == math.inf


def test_comparison_rows_say_rank_interval_counts_and_config() -> None:
    table = pd.DataFrame([
        {"rank": 1, "method": "asam", "mean": 0.9252500000000001, "low": 0.91571, "high": 0.93479, "n": 6,
         "overhead": 2.8234, "hparams": {"lr": 0.05123456, "rho": 1.0}},
        {"rank": 2, "method": "sgd", "mean": 0.87521, "low": math.nan, "high": math.nan, "n": 1,
         "overhead": 1.0, "hparams": {}}])
    trials = pd.DataFrame({"method": ["asam"] * 3 + ["sgd"] * 4,
                           "status": ["completed", "pruned", "pruned", "completed", "diverged", "errored", "pruned"]})
    rows = comparison_rows(table, trials)
    # rounded as the console summary rounds: at the half-width's (0.0095) first significant digit
    assert rows[0] == ("1", "asam", "0.925", "[0.916, 0.935]", "6", "1/2/0/0", "2.823x", "lr=0.05123, rho=1")
    assert rows[1][2] == "0.875" and rows[1][3] == "-" and rows[1][5] == "1/1/1/1" and rows[1][7] == "-"
    text = comparison_markdown(rows, "eval/accuracy", "maximize", "winners from the search")
    assert "Ranked by the lower end of each winner's 95% interval" in text and "winners from the search" in text
    assert text.count("\n| ") == 3  # header and two rows


def test_round_metrics_shows_rounded_values_and_keeps_the_computed_ones(tmp_path) -> None:
    """What `report` does after it logged full floats again: the UI's value is rounded, the history exact."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    run = client.create_run(client.create_experiment("x")).info.run_id
    client.log_batch(run, metrics=[Metric("best/sam/eval_accuracy", 0.9252500000000001, 1000, 0),
                                   Metric("budget/sam/used", 12.0, 1000, 0)])
    assert round_metrics(client, run) == 1
    assert client.get_run(run).data.metrics == {"best/sam/eval_accuracy": 0.9253, "budget/sam/used": 12.0}
    history = [m.value for m in client.get_metric_history(run, "best/sam/eval_accuracy")]
    assert sorted(history) == [0.9252500000000001, 0.9253]
    assert round_metrics(client, run) == 0  # nothing left to round: nothing written again
