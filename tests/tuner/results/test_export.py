"""Export round trip: MLflow run params -> exported file -> load_config -> build_optimizer -> same values."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from fake_experiment import write_fake_experiment  # tests/ is on sys.path (pyproject)
from mlflow.tracking import MlflowClient
from torch import nn

from methods import build_optimizer, get_method, load_config
from tuner.cli import main
from tuner.hparams import optimizer_hparams
from tuner.results.export import _optimizer_hparams, _training
from tuner.tracking.reader import parse_param

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def fake(tmp_path_factory: pytest.TempPathFactory):
    return write_fake_experiment(tmp_path_factory.mktemp("export"))


def _export(fake, tmp_path: Path, *extra: str, name: str = "best.yaml") -> Path:
    out = tmp_path / name
    assert main(["export", fake.name, "--storage", str(fake.storage), "-o", str(out), *extra]) == 0
    return out


def test_export_round_trip_matches_mlflow_params(fake, tmp_path: Path) -> None:
    path = _export(fake, tmp_path)
    exported = yaml.safe_load(path.read_text())
    assert exported["method"] == "sam"
    prov = exported["provenance"]
    assert prov["experiment"] == fake.name and prov["seeds"] == [0, 1, 2]
    assert set(fake.confirm_ids["sam"]) <= set(prov["run_ids"]) and prov["parent_run_id"] == fake.parent_id
    assert prov["metric"]["name"] == "eval/accuracy" and prov["metric"]["source"] == "confirm"
    assert prov["metric"]["ci95"][0] < prov["metric"]["mean"] < prov["metric"]["ci95"][1]
    assert prov["conditions"] == {"label_noise": [0.0, 0.2]}
    assert {"torch", "sharptune"} <= set(prov["versions"])
    # a spec without lr_schedule (written before the key) trained at a constant lr; SAM: 600 grad evals, 300 steps
    assert prov["training"] == {"lr_schedule": {"name": "constant", "warmup": 0.0, "horizon": 300}}

    config = load_config(path)
    opt = build_optimizer(nn.Linear(4, 2), **config)
    run = MlflowClient(fake.tracking_uri).get_run(prov["run_ids"][0])
    params = {k: parse_param(v) for k, v in run.data.params.items() if k not in ("method", "label_noise")}
    # exactly what the trial built: its values, resolved along the trial's path (defaults filled)
    assert params and exported["hyperparameters"] == optimizer_hparams("sam", params, None)
    for name, value in params.items():
        assert opt.hparams[name] == value, name
    assert opt.method == run.data.params["method"]


def test_export_json_and_method_choice(fake, tmp_path: Path) -> None:
    path = _export(fake, tmp_path, "--method", "sgd", name="sgd.json")
    data = json.loads(path.read_text())
    assert data["method"] == "sgd"
    assert data["hyperparameters"] == optimizer_hparams("sgd", {"lr": 0.05, "nesterov": True}, None)
    assert data["hyperparameters"]["momentum"] == get_method("sgd").resolve({})["momentum"]  # defaults written out
    opt = build_optimizer(nn.Linear(4, 2), **load_config(path))
    assert opt.hparams["nesterov"] is True and opt.hparams["lr"] == 0.05


def test_export_errors_are_one_line(fake, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", fake.name, "--storage", str(fake.storage), "--method", "nbar"]) == 2
    assert main(["export", "missing", "--storage", str(fake.storage)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "sgd_ire" in err[0] and "known: demo-exp" in err[1]


def test_example_script_trains_with_exported_config(fake, tmp_path: Path) -> None:
    path = _export(fake, tmp_path)
    proc = subprocess.run([sys.executable, str(ROOT / "examples/train_with_exported_config.py"), str(path),
                           "--steps", "150"], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "training with sam" in proc.stdout
    accuracy = float(proc.stdout.strip().splitlines()[-1].split()[-1])
    assert accuracy > 0.8  # three well-separated blobs: chance is 1/3


def test_exported_schedule_carries_the_trial_horizon() -> None:
    """A winning cosine oBAR exports with the horizon its trial used, so `build_optimizer` accepts it."""
    import torch

    hparams = _optimizer_hparams("obar", {"schedule": "cosine", "lr": 1e-3, "mu0": 0.1}, 1200)
    assert hparams["total_steps"] == 1200 and hparams["schedule"] == "cosine"
    x, y = torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(2))
    assert build_optimizer([x, y], "obar", pairs=[(x, y)], **hparams).hparams["total_steps"] == 1200


def test_exported_lr_schedule_carries_the_trial_horizon() -> None:
    """The spec's lr schedule goes into the provenance with the trial's length in steps (SAM: half of SGD's)."""
    spec = {"lr_schedule": {"name": "cosine", "warmup": 0.05}, "budget": {"trial_grad_evals": 1000}}
    assert _training(spec, "sgd", {"lr": 0.1}, 1000) == {
        "lr_schedule": {"name": "cosine", "warmup": 0.05, "horizon": 1000}}
    assert _training(spec, "sam", {"lr": 0.1, "rho": 0.05}, 1000)["lr_schedule"]["horizon"] == 500
    assert _training({}, "sam", {}, None) == {"lr_schedule": {"name": "constant", "warmup": 0.0, "horizon": None}}
