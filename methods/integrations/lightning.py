"""`SharpLightningModule`: a `LightningModule` base whose optimizer is a sharptune method.

    class Classifier(SharpLightningModule):
        def __init__(self):
            super().__init__(sharp_config="best.yaml")
            self.net = nn.Linear(8, 3)
        def sharp_loss(self, batch):
            x, y = batch
            logits = self.net(x)
            return F.cross_entropy(logits, y), logits

The method runs the model itself (two passes for the SAM family), which Lightning's automatic
optimization cannot express (one backward per step; davda54/sam#31, Lightning-AI/pytorch-lightning#16143).
So the base turns manual optimization on, builds the optimizer in `configure_optimizers`, and in
`training_step` hands Lightning one closure that runs the whole method step on the batch, so
Lightning's step counter, `max_steps` and lr schedulers see one step. It logs `train_loss` and the
counts (`sharp_fwd`, `sharp_bwd`, `sharp_grad_evals`). Precision: `32-true` and `bf16-mixed` (the
optimizer autocasts every pass in bf16). `16-mixed` is refused: Lightning's GradScaler would step
the optimizer itself; use bf16-mixed, or the plain loop / SharpTrainer for fp16 loss scaling.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from torch import Tensor

from methods._build import build_optimizer
from methods._errors import ConfigError
from methods._optimizer import SharpOptimizer
from methods.integrations._config import sharp_config as read_config
from methods.integrations._stack_optimizer import SteppedElsewhere

PRECISIONS = {"32-true": "fp32", "32": "fp32", "bf16-mixed": "bf16"}  # Lightning's name -> the optimizer's


class SharpLightningModule(pl.LightningModule):
    """Subclass it, call `super().__init__(sharp_config=...)`, implement `sharp_loss(batch)`."""

    def __init__(self, *, sharp_config: str | Path | Mapping[str, Any]) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.sharp_method, self.sharp_hparams = read_config(sharp_config)
        self.sharp: SharpOptimizer | None = None

    def sharp_loss(self, batch: Any) -> tuple[Tensor, Any]:
        """Forward only: `(loss, outputs)` on the batch; outputs are the logits (or have `.logits`)."""
        raise NotImplementedError(f"{type(self).__name__} must implement sharp_loss(batch) -> (loss, outputs)")

    def configure_optimizers(self) -> SteppedElsewhere:
        precision = str(self.trainer.precision)
        if precision not in PRECISIONS:
            raise ConfigError(f"SharpLightningModule: Trainer precision {precision!r} is not supported; use one of "
                              f"{', '.join(PRECISIONS)} (fp16 loss scaling: the plain loop or SharpTrainer)")
        self.sharp = build_optimizer(self, self.sharp_method, precision=PRECISIONS[precision], **self.sharp_hparams)
        return SteppedElsewhere(self.sharp)

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        assert self.sharp is not None, "configure_optimizers runs before the first training step"
        sharp = self.sharp
        loss = self.optimizers().step(closure=lambda: sharp.step(lambda: self.sharp_loss(batch)))
        self.log("train_loss", loss, prog_bar=True)
        self.log_dict({f"sharp_{k}": float(v) for k, v in sharp.counts.items()})
        return loss
