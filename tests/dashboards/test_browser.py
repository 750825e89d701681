"""Headless Chromium renders the report and the MLflow UI served on loopback by `python -m tuner ui`.

Skips (with the reason) only when the chromium binary is missing; `.ci/run` installs it.
"""

from __future__ import annotations

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
from fake_experiment import FakeExperiment
from mlflow.tracking import MlflowClient

from tuner.commands.ui import landing_url, runs_url

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
ROOT = Path(__file__).resolve().parents[2]


def _chromium(tmp_path: Path, url: str, *, screenshot: Path | None = None, budget_ms: int = 0) -> str:
    """The rendered DOM of `url` (after `budget_ms` of virtual time for scripts), or a screenshot."""
    args = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'chrome-profile'}", "--window-size=1400,1000"]
    if budget_ms:
        args.append(f"--virtual-time-budget={budget_ms}")
    args += [f"--screenshot={screenshot}"] if screenshot else ["--dump-dom"]
    proc = subprocess.run([*args, url], capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_report_renders_sections_and_plots(built_report: Path, tmp_path: Path) -> None:
    dom = _chromium(tmp_path, built_report.as_uri())
    for sid in ("summary", "best_so_far", "pareto", "robustness", "ecdf", "hyperparameters", "diagnostics"):
        assert f'<section id="{sid}" data-status="ok">' in dom
    names = re.findall(r'<img class="plot" data-name="([^"]+)"', dom)
    assert {"best_so_far", "pareto", "overhead", "robustness", "ecdf", "diagnostics", "hparams_sam"} <= set(names)
    assert "sgd_ire" in dom and "vs base sgd" in dom
    for name in names:  # each figure links its vector files, and they exist beside the page
        assert f'<a class="vector" href="{name}.svg">SVG</a>' in dom and (built_report.parent / f"{name}.svg").is_file()
    assert 'data-importance="refused"' in dom and "trials ran while another trial" in dom
    svg = _chromium(tmp_path, (built_report.parent / "hparams_sam.svg").as_uri())  # the SVG renders on its own
    assert 'id="sam:lr:completed"' in svg and 'id="sam:lr:pruned"' in svg
    shot = tmp_path / "report.png"
    _chromium(tmp_path, built_report.as_uri(), screenshot=shot)
    assert shot.stat().st_size > 20_000


def _sigint_ignored() -> None:
    """Start a server as a shell starts a background job: SIGINT ignored. Ctrl-C must stop it anyway."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.slow
@pytest.mark.opt_in  # a minute; tests/tuner/run/test_mlflow_view.py renders the UI in Chromium by default
def test_mlflow_ui_on_loopback_shows_runs_and_stops_on_ctrl_c(fake_experiment: FakeExperiment,
                                                               built_report: Path, tmp_path: Path) -> None:
    port = _free_port()
    log = tmp_path / "ui.log"
    with log.open("w") as out:
        ui = subprocess.Popen([sys.executable, "-m", "tuner", "ui", fake_experiment.name, "--storage",
                               str(fake_experiment.storage), "--port", str(port)], cwd=ROOT, stdout=out,
                              stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=_sigint_ignored)
    try:
        deadline, url = time.monotonic() + 150, None
        while url is None and time.monotonic() < deadline and ui.poll() is None:
            found = re.search(r"MLflow UI: (\S+)", log.read_text())
            url = found.group(1) if found else time.sleep(0.5)
        assert url is not None, log.read_text()[-3000:]
        client = MlflowClient(fake_experiment.tracking_uri)
        exp_id = client.get_experiment_by_name(f"sharptune/{fake_experiment.name}").experiment_id
        # it opens through sharptune's page that keeps MLflow's classic UI (tests/tuner/run/test_mlflow_view.py)
        assert url.startswith(landing_url(f"http://127.0.0.1:{port}/", exp_id, fake_experiment.parent_id)), url
        url = runs_url(f"http://127.0.0.1:{port}/", exp_id)
        # it lands on the training-runs table (not MLflow 3's GenAI overview), through sharptune's saved view
        shot = tmp_path / "mlflow_runs.png"
        _chromium(tmp_path, url, screenshot=shot, budget_ms=15_000)
        assert shot.stat().st_size > 20_000
        dom = _chromium(tmp_path, url, budget_ms=15_000)
        assert f"sharptune/{fake_experiment.name}" in dom and "sharptune trials by eval/accuracy" in dom
        assert "Detect Issues" not in dom and "Model training" in dom
        headers = re.findall(r'col-id="([^"]+)"', dom)
        assert "metrics.`eval/accuracy`" in headers and "params.`method`" in headers, sorted(set(headers))
        names = {rid: client.get_run(rid).info.run_name for ids in (fake_experiment.confirm_ids,
                                                                     fake_experiment.search_ids)
                 for group in ids.values() for rid in group}
        best = names[fake_experiment.confirm_ids["sgd_ire"][0]]  # 0.905, the highest accuracy
        shown = [n for n in re.findall(r">((?:confirm|search)-[a-z_]+-c?\d+)<", dom)]
        assert shown and shown[0] == best, shown[:5]  # trial runs listed, best first
        assert names[fake_experiment.search_ids["sgd"][3]] not in shown[:5]  # the pruned 0.55 is far down
        run_url = f"http://127.0.0.1:{port}/#/experiments/{exp_id}/runs/{fake_experiment.parent_id}"
        dom = _chromium(tmp_path, run_url, budget_ms=15_000)
        assert "best/sam/eval_accuracy" in dom and "overhead/sam" in dom  # the winners on the parent's page
        assert "confirm-sam-" in dom  # its child runs
        shot = tmp_path / "mlflow_parent_run.png"
        _chromium(tmp_path, run_url, screenshot=shot, budget_ms=15_000)
        assert shot.stat().st_size > 20_000
    finally:
        ui.send_signal(signal.SIGINT)  # what Ctrl-C sends
        try:
            code = ui.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(ui.pid, signal.SIGKILL)
            raise
    assert code == 0, log.read_text()[-2000:]
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()  # the server's group is gone
