"""`python -m tuner dashboard NAME` serves optuna-dashboard over the experiment's journal on loopback,
and headless Chromium renders the study with its trials (the screenshot is kept for a person to look at)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from e2e import smoke_spec
from test_browser import CHROMIUM, ROOT, _chromium, _free_port, _sigint_ignored

from tuner.layout import JOURNAL_FILE
from tuner.run.split import QUOTA_ATTR, MethodSplitSearch
from tuner.spec import load_spec

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
SHOT_DIR = os.environ.get("SHARPTUNE_SCREENSHOTS")  # keep the screenshot where a person can open it


def _experiment(tmp_path: Path) -> Path:
    """A smoke experiment's studies as the platform's search leaves them (sgd and sam, one study each, the
    default `budget.split: per_method`): completed, pruned and failed trials."""
    spec = load_spec(smoke_spec(tmp_path))
    assert spec.budget.split == "per_method"
    search = MethodSplitSearch(spec, Path(spec.experiment_dir) / JOURNAL_FILE)
    for i in range(6):
        search.suggest(f"t{i}")
        search.on_trial_result(f"t{i}", {"eval/loss": 1.0 / (i + 1), "cost/grad_evals": 20.0})
    for i in range(4):
        search.on_trial_complete(f"t{i}", {"eval/loss": 0.5 / (i + 1), "cost/grad_evals": 200.0,
                                           "sharptune/complete": 1.0})
    search.on_trial_complete("t4", {"eval/loss": 0.9, "cost/grad_evals": 40.0})  # stopped by ASHA: PRUNED
    search.on_trial_complete("t5", None, error=True)
    return Path(spec.storage_path)


@pytest.mark.slow
def test_dashboard_serves_the_study_on_loopback(tmp_path: Path) -> None:
    storage = _experiment(tmp_path)
    missing = subprocess.run([sys.executable, "-m", "tuner", "dashboard", "nope", "--storage", str(storage)],
                             cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and "no Optuna journal for experiment 'nope'" in missing.stderr
    assert "Traceback" not in missing.stderr
    port = _free_port()
    log = tmp_path / "dashboard.log"
    with log.open("w") as out:
        server = subprocess.Popen([sys.executable, "-m", "tuner", "dashboard", "smoke", "--storage", str(storage),
                                   "--port", str(port)], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                  start_new_session=True, preexec_fn=_sigint_ignored)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and server.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.5)
        text = log.read_text()
        assert f"Optuna dashboard: http://127.0.0.1:{port}/dashboard/" in text, text[-2000:]
        assert "studies 'smoke/sgd', 'smoke/sam'" in text  # each method's search apart
        outside = socket.gethostbyname(socket.gethostname())
        if not outside.startswith("127."):  # bound to loopback only: another address of the host is refused
            with pytest.raises(OSError):
                socket.create_connection((outside, port), timeout=1).close()
        home = _chromium(tmp_path, f"http://127.0.0.1:{port}/dashboard/", budget_ms=10_000)
        assert "smoke/sgd" in home and "smoke/sam" in home, home[-3000:]
        url = f"http://127.0.0.1:{port}/dashboard/studies/0"
        dom = _chromium(tmp_path, url, budget_ms=10_000)
        assert "smoke/" in dom and re.search(r"Trials?", dom)
        assert QUOTA_ATTR in dom  # the method's budget, a study user attribute the dashboard shows
        shot = Path(SHOT_DIR) if SHOT_DIR else tmp_path
        shot.mkdir(parents=True, exist_ok=True)
        _chromium(tmp_path, url, screenshot=shot / "optuna_dashboard.png", budget_ms=10_000)
        assert (shot / "optuna_dashboard.png").stat().st_size > 20_000
    finally:
        os.killpg(server.pid, signal.SIGINT)
        server.wait(timeout=30)
    assert server.returncode == 0
