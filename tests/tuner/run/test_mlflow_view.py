"""What a researcher sees in MLflow after a real run: the comparison first, in the classic UI.

One real `python -m tuner run` of the smoke spec with a confirmation phase (local Ray, SQLite MLflow, about
two minutes on 2 cores) feeds both checks: the MLflow records (tags, statuses, the comparison artifacts,
rounded summary metrics, the saved view), read through MLflow's client; and the UI that `python -m tuner ui`
serves, rendered by headless Chromium (skipped, with the reason, where chromium is missing).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from e2e import ROOT, cli, smoke_spec

pytestmark = pytest.mark.slow
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
NAME = "view"
CHECK_MARK = "M11.53 6.53 7 11.06"  # the tick of MLflow's "finished" status icon (a failure is a cross)


@pytest.fixture(scope="module")
def view(tmp_path_factory: pytest.TempPathFactory) -> dict:
    from mlflow import MlflowClient

    folder = tmp_path_factory.mktemp("view")
    spec = smoke_spec(folder, name=NAME, confirm={"top_k": 1, "seeds": [0, 1]})
    proc = cli("run", str(spec), timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    storage = folder / "results"
    client = MlflowClient(f"sqlite:///{storage / NAME / 'mlflow.db'}")
    exp = client.get_experiment_by_name(f"sharptune/{NAME}")
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parent = next(r for r in runs if r.data.tags.get("sharptune.role") == "parent")
    trials = [r for r in runs if r.data.tags.get("sharptune.role") == "trial"]
    return {"storage": storage, "client": client, "exp": exp, "parent": parent, "trials": trials}


def _four_digits(value: float) -> bool:
    return value == float(f"{value:.4g}")


def test_runs_are_nested_phased_and_pruned_is_not_a_failure(view: dict) -> None:
    parent, trials = view["parent"], view["trials"]
    assert {r.data.tags["sharptune.phase"] for r in trials} == {"search", "confirm"}
    assert all(r.data.tags["mlflow.parentRunId"] == parent.info.run_id for r in trials)
    pruned = [r for r in trials if r.data.tags["sharptune.status"] == "pruned"]
    assert pruned, "ASHA stopped no trial: nothing to check"
    assert {r.info.status for r in pruned} == {"FINISHED"}  # not KILLED: the UI draws that as a red failure
    assert all(float(r.data.tags["sharptune.pruned_at"]) < 200 for r in pruned)
    view_tag = view["exp"].tags["mlflow.sharedViewState.sharptune-trials"]
    state = json.loads(json.loads(view_tag)["state"])
    assert state["groupBy"]["groupByKeys"] == [{"mode": "tag", "groupByData": "sharptune.phase"}]
    assert "tags.`sharptune.status`" in state["selectedColumns"] and state["orderByKey"] == "metrics.`eval/loss`"


def test_parent_holds_the_comparison_and_rounded_metrics(view: dict, tmp_path: Path) -> None:
    client, parent = view["client"], view["parent"]
    pid = parent.info.run_id
    assert {"comparison.md", "comparison.html"} <= {a.path for a in client.list_artifacts(pid)}
    markdown = Path(client.download_artifacts(pid, "comparison.md", str(tmp_path))).read_text()
    rows = [line.split("|")[1:-1] for line in markdown.splitlines() if re.match(r"\| [12] \|", line)]
    assert [cells[1].strip() for cells in rows] == [parent.data.tags["sharptune.winner"], *(
        m for m in ("sgd", "sam") if m != parent.data.tags["sharptune.winner"])]
    metrics = parent.data.metrics
    for cells in rows:  # the table's best value is the parent's metric, at 4 significant digits
        method, best = cells[1].strip(), cells[2].strip()
        assert float(best) == pytest.approx(metrics[f"best/{method}/eval_loss"], rel=1e-3, abs=1e-12)
        assert re.fullmatch(r"\d+/\d+/0/0", cells[5].strip())  # c/p/d/e
    assert "Ranked by the upper end" in markdown and "c/p/d/e: completed/pruned/diverged/errored" in markdown
    assert parent.data.tags["mlflow.note.content"].startswith(markdown.strip())  # the run page's description
    html = Path(client.download_artifacts(pid, "comparison.html", str(tmp_path))).read_text()
    assert html.count("<tr>") == 1 + len(rows) and "interval" in html
    assert metrics and all(_four_digits(v) for v in metrics.values()), metrics
    for key in ("overhead/sam", "sensitivity/sam"):  # shown rounded, rounded from the value computed
        history = client.get_metric_history(pid, key)
        assert history[-1].value == float(f"{history[0].value:.4g}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _chromium(profile: Path, url: str, screenshot: Path | None = None) -> str:
    """The DOM (or a screenshot) of `url` after 15 s of virtual time; `profile` keeps localStorage between calls."""
    args = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={profile}", "--window-size=1600,1000", "--virtual-time-budget=15000"]
    args += [f"--screenshot={screenshot}"] if screenshot else ["--dump-dom"]
    proc = subprocess.run([*args, url], capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def _shot(profile: Path, url: str, name: str) -> None:
    """A screenshot of `url` into $SHARPTUNE_SHOTS, to look at (the DOM checks are the test; a render is
    seconds of CPU, so none is taken without the variable)."""
    shots = os.environ.get("SHARPTUNE_SHOTS")
    if shots:
        _chromium(profile, url, Path(shots) / name)
        assert (Path(shots) / name).stat().st_size > 20_000, f"{name}: a blank page"


def _status_icon(dom: str, run_id: str) -> str:
    """The status icon (SVG) in the runs table's date cell of `run_id`'s row ("" when not drawn)."""
    for row in re.finditer(rf'row-id="[^"]*{run_id}"', dom):  # grouped rows: "<group key>.<run id>"
        cell, next_row = dom.find('col-id="runDateAndNestInfo"', row.end()), dom.find("row-id=", row.end())
        if cell != -1 and (next_row == -1 or cell < next_row):
            icon = dom.find('<span role="img"', cell)
            return dom[icon:dom.find("</svg>", icon)]
    return ""


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_ui_opens_on_the_comparison_in_classic_mode(view: dict, tmp_path: Path) -> None:
    from tuner.commands.ui import landing_url, runs_url

    port, log = _free_port(), tmp_path / "ui.log"
    with log.open("w") as out:
        ui = subprocess.Popen([sys.executable, "-m", "tuner", "ui", NAME, "--storage", str(view["storage"]),
                               "--port", str(port)], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                              start_new_session=True)
    exp_id, pid = view["exp"].experiment_id, view["parent"].info.run_id
    base, profile = f"http://127.0.0.1:{port}/", tmp_path / "profile"
    try:
        deadline, url = time.monotonic() + 150, None
        while url is None and time.monotonic() < deadline and ui.poll() is None:
            found = re.search(r"MLflow UI: (\S+)", log.read_text())
            url = found.group(1) if found else time.sleep(0.5)
        assert url == landing_url(base, exp_id, pid, "comparison.html"), log.read_text()[-3000:]
        # 1. it opens on the parent's comparison page, in the "Model training" UI (GenAI's nav is absent)
        dom = _chromium(profile, url)
        assert "comparison.html" in dom and "Model training" in dom
        assert "Evaluation runs" not in dom and "Playground" not in dom
        _shot(profile, url, "1_landing.png")
        # 2. MLflow's own link to the parent run (no workflowType in it) stays classic: the description's table
        run_page = f"{base}#/experiments/{exp_id}/runs/{pid}"
        dom = _chromium(profile, run_page)
        assert "Evaluation runs" not in dom and "Comparison" in dom and "Child runs" in dom
        assert re.search(r"<td[^>]*>\s*1\s*</td>\s*<td[^>]*>\s*(sgd|sam)\s*</td>", dom), "no comparison table"
        _shot(profile, run_page, "2_parent_run.png")
        # 3. the runs view: grouped by phase; a pruned trial has the tick of a finished run and says "pruned"
        dom = _chromium(profile, runs_url(base, exp_id))
        assert "Group: confirm" in dom and "Group: search" in dom and "Evaluation runs" not in dom
        pruned = [r.info.run_id for r in view["trials"] if r.data.tags["sharptune.status"] == "pruned"]
        completed = [r.info.run_id for r in view["trials"] if r.data.tags["sharptune.status"] == "completed"]
        assert ">pruned<" in dom
        icons = {rid: _status_icon(dom, rid) for rid in pruned + completed[:1]}
        assert all(CHECK_MARK in icon for icon in icons.values()), icons
        assert len(set(icons.values())) == 1  # the very same icon as a completed run's
        _shot(profile, runs_url(base, exp_id), "3_runs_by_phase.png")
    finally:
        ui.send_signal(signal.SIGINT)
        try:
            ui.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(ui.pid, signal.SIGKILL)
            raise
