"""The report, export and example script on a real small experiment written by `python -m tuner run`."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from e2e import ROOT, smoke_spec
from mlflow.tracking import MlflowClient
from torch import nn

from methods import build_optimizer, load_config
from tuner.cli import main
from tuner.tracking.reader import parse_param

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def real_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The smoke spec (valley2d, sgd vs sam) plus a 2-seed confirmation phase, storage in tmp."""
    folder = tmp_path_factory.mktemp("real")
    path = smoke_spec(folder, name="smoke-report", confirm={"top_k": 1, "seeds": [0, 1]})
    assert main(["run", str(path)]) == 0
    return folder / "results"


def test_report_from_real_run(real_run: Path) -> None:
    assert main(["report", "smoke-report", "--storage", str(real_run)]) == 0
    html = (real_run / "smoke-report" / "report" / "report.html").read_text()
    status = dict(re.findall(r'<section id="([^"]+)" data-status="(\w+)">', html))
    for sid in ("summary", "best_so_far", "pareto", "ecdf", "hyperparameters"):
        assert status[sid] == "ok", sid
    assert status["robustness"] == "empty"  # no label-noise levels in this spec: the section says so
    assert "winners from the confirmation runs" in html and "(n=2)" in html
    client = MlflowClient(f"sqlite:///{real_run / 'smoke-report' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("sharptune/smoke-report")
    parent = client.search_runs([exp.experiment_id], "tags.`sharptune.role` = 'parent'")[0]
    assert {"best/sgd/eval_loss", "best/sam/eval_loss", "overhead/sam"} <= set(parent.data.metrics)
    best = client.search_runs([exp.experiment_id], "tags.`sharptune.best` = 'true'")
    assert {r.data.tags["sharptune.rank"] for r in best} == {"1", "2"}
    assert any(r.data.tags["sharptune.phase"] == "confirm" for r in best)


def test_export_from_real_run_round_trips_and_trains(real_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "best.yaml"
    assert main(["export", "smoke-report", "--storage", str(real_run), "--method", "sam", "-o", str(out)]) == 0
    exported = yaml.safe_load(out.read_text())
    client = MlflowClient(f"sqlite:///{real_run / 'smoke-report' / 'mlflow.db'}")
    run = client.get_run(exported["provenance"]["run_ids"][0])
    assert run.data.tags["sharptune.phase"] == "confirm" and exported["provenance"]["seeds"] == [0, 1]
    opt = build_optimizer(nn.Linear(3, 2), **load_config(out))
    params = {k: parse_param(v) for k, v in run.data.params.items() if k != "method"}
    for name, value in params.items():
        if name in opt.hparams:
            assert opt.hparams[name] == value, name
    assert opt.method == "sam" and "rho" in exported["hyperparameters"]
    proc = subprocess.run([sys.executable, str(ROOT / "examples/train_with_exported_config.py"), str(out),
                           "--steps", "50"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_report_axes_follow_the_space_the_run_stored(real_run: Path) -> None:
    """The runner's stored space (the parent run's spec.yaml) decides each slice's scale: lr and rho are
    log-uniform in the smoke spec, momentum is fixed (no panel)."""
    from dashboards.data import collect
    from dashboards.slices import hparam_slices
    from tuner.tracking.reader import ExperimentStore

    data = collect(ExperimentStore.open("smoke-report", storage=real_run))
    rho = {"type": "float", "low": 0.01, "high": 0.2, "log": True, "when": {"method": ["sam"]}}
    assert data.space["sam"]["rho"] == rho
    scales = {ax.get_title().split(": ")[1]: ax.get_xscale() for ax in hparam_slices(data, "sam").axes
              if ax.get_visible()}
    assert scales == {"lr": "log", "rho": "log"}
