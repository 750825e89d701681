"""`tuner export` output loads unchanged into the three stacks (issue 13): the plain loop, SharpTrainer and
SharpLightningModule, each through its runnable script in `examples/`.

The file comes from the real `tuner export` command on a real MLflow store (the fake experiment of the
dashboard tests). Each stack must build the optimizer with exactly the exported hyperparameters, count
the declared gradient evaluations per step, and keep the loss finite (falling where it trains long enough).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch
import yaml
from fake_experiment import write_fake_experiment

from methods import get_method
from tuner.cli import main as tuner

ROOT = Path(__file__).resolve().parents[3]


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(name, module)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("stacks")
    fake = write_fake_experiment(root)
    out = root / "best.yaml"
    assert tuner(["export", fake.name, "--storage", str(fake.storage), "-o", str(out)]) == 0
    return out


def _declared(path: Path) -> tuple[dict, float]:
    data = yaml.safe_load(path.read_text())
    return data["hyperparameters"], get_method(data["method"]).grad_evals_per_step(**data["hyperparameters"])


@pytest.mark.slow
def test_the_exported_file_runs_in_the_plain_loop_the_hf_trainer_and_lightning(exported, tmp_path):
    hparams, per_step = _declared(exported)
    assert "provenance" in yaml.safe_load(exported.read_text())  # the real export layout, loaded unchanged

    accuracy = _load(ROOT / "examples/train_with_exported_config.py", "ex_plain").main([str(exported), "--steps", "30"])
    assert accuracy > 0.6  # three classes: chance is 1/3

    trainer = _load(ROOT / "examples/train_with_hf_trainer.py", "ex_hf").main(
        [str(exported), "--steps", "6", "--bf16", "--output-dir", str(tmp_path / "hf")])
    assert trainer.sharp.hparams == {**trainer.sharp.hparams, **{k: tuple(v) if isinstance(v, list) else v
                                                                for k, v in hparams.items()}}
    assert trainer.sharp.counts["grad_evals"] == pytest.approx(per_step * 6)
    assert all(torch.isfinite(torch.tensor(e["loss"])) for e in trainer.state.log_history if "loss" in e)

    module = _load(ROOT / "examples/train_with_lightning.py", "ex_lightning").main([str(exported), "--steps", "20"])
    assert module.sharp.hparams == trainer.sharp.hparams
    assert module.sharp.counts["grad_evals"] == pytest.approx(per_step * 20)
    assert all(map(torch.isfinite, torch.tensor(module.losses)))
    assert sum(module.losses[-5:]) < sum(module.losses[:5])
