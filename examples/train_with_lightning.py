"""Train with Lightning and a config exported by `python -m tuner export NAME -o best.yaml`.

    pip install -e ".[lightning]"
    python examples/train_with_lightning.py best.yaml [--steps 100] [--precision bf16-mixed]

The sharptune lines: subclass `SharpLightningModule`, pass `sharp_config=` to its `__init__`, and
write `sharp_loss(batch) -> (loss, logits)` (forward only). The base turns manual optimization on,
builds the optimizer and steps it. The task is a synthetic 3-class problem (no download).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import lightning.pytorch as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from methods.integrations.lightning import SharpLightningModule  # noqa: E402


class Classifier(SharpLightningModule):
    def __init__(self, sharp_config: str) -> None:
        super().__init__(sharp_config=sharp_config)                     # the exported winner
        self.net = nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 3))
        self.losses: list[float] = []

    def sharp_loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = batch
        logits = self.net(x)                                            # forward only, no backward
        return nn.functional.cross_entropy(logits.float(), y), logits

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        self.losses.append(float(outputs["loss"]))


def blobs(n: int, seed: int) -> TensorDataset:
    """Three noisy Gaussian blobs in 8 dimensions (same centres for every split)."""
    centers = torch.randn(3, 8, generator=torch.Generator().manual_seed(1234)) * 2.0
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=g)
    return TensorDataset(centers[y] + torch.randn(n, 8, generator=g) * 1.5, y)


def main(argv: list[str] | None = None) -> Classifier:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", help="exported YAML or JSON config")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--precision", default="32-true", help="32-true or bf16-mixed")
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    module = Classifier(args.config)
    trainer = pl.Trainer(max_steps=args.steps, accelerator="cpu", precision=args.precision, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, DataLoader(blobs(2048, seed=0), batch_size=64, shuffle=True))
    print(f"{module.sharp.method}: {module.sharp.counts['grad_evals']} gradient evaluations, "
          f"loss {module.losses[0]:.4f} -> {module.losses[-1]:.4f}")
    return module


if __name__ == "__main__":
    main()
