"""SharpLightningModule under a real `lightning.Trainer` on CPU (issue 13).

Each run checks that the counted gradient evaluations equal the preset's declared cost times the
steps (as logged), that Lightning counted one step per method step, and that the loss is finite and
falls; bf16-mixed must run every pass under autocast. Unsupported precisions fail with a ConfigError.
"""

from __future__ import annotations

import lightning.pytorch as pl
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from methods import ConfigError, get_method
from methods.integrations.lightning import SharpLightningModule


class Classifier(SharpLightningModule):
    def __init__(self, sharp_config) -> None:
        super().__init__(sharp_config=sharp_config)
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(8, 32), nn.Tanh(), nn.Linear(32, 3))
        self.dtypes: list[torch.dtype] = []
        self.losses: list[float] = []

    def sharp_loss(self, batch):
        x, y = batch
        logits = self.net(x)
        self.dtypes.append(logits.dtype)
        return nn.functional.cross_entropy(logits.float(), y), logits

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        self.losses.append(float(outputs["loss"]))


def _loader() -> DataLoader:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(32, 8, generator=g)
    y = (x[:, :3]).argmax(dim=1)
    return DataLoader(TensorDataset(x, y), batch_size=32)


def fit(config, steps: int, precision: str = "32-true") -> tuple[Classifier, pl.Trainer]:
    module = Classifier(config)
    trainer = pl.Trainer(max_steps=steps, accelerator="cpu", precision=precision, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, _loader())
    return module, trainer


@pytest.mark.slow
@pytest.mark.parametrize(("config", "steps", "precision"), [
    ({"method": "sam", "lr": 0.1, "rho": 0.05}, 6, "bf16-mixed"),
    ({"method": "admire", "lr": 3e-3, "warmup": 0}, 10, "32-true"),  # one IRE interval: the Fisher pass counts once
])
def test_a_method_trains_under_the_lightning_trainer(config, steps, precision):
    module, trainer = fit(config, steps, precision)
    hp = {k: v for k, v in config.items() if k != "method"}
    declared = get_method(config["method"]).grad_evals_per_step(**hp) * steps
    assert trainer.global_step == steps  # Lightning counted one step per method step
    assert module.sharp.counts["grad_evals"] == pytest.approx(declared)
    assert float(trainer.callback_metrics["sharp_grad_evals"]) == pytest.approx(declared)
    assert len(module.losses) == steps and all(map(torch.isfinite, torch.tensor(module.losses)))
    assert module.losses[-1] < module.losses[0]
    assert set(module.dtypes) == {torch.bfloat16 if precision == "bf16-mixed" else torch.float32}
    assert len(module.dtypes) == module.sharp.counts["fwd"]


def test_an_unsupported_precision_and_a_bad_config_are_refused():
    # (16-mixed is refused the same way, but on CPU Lightning itself turns it into bf16-mixed)
    with pytest.raises(ConfigError, match="precision 'bf16-true' is not supported; use one of 32-true"):
        fit({"method": "sam"}, 1, "bf16-true")
    with pytest.raises(ConfigError, match="unknown method 'bogus'"):
        Classifier({"method": "bogus"})
