"""`SharpTrainer`: a Hugging Face `transformers.Trainer` that steps a sharptune method.

    trainer = SharpTrainer(model=model, args=TrainingArguments(..., bf16=True),
                           train_dataset=ds, sharp_config="best.yaml")
    trainer.train()

The method takes its own gradients (two passes for the SAM family), so `training_step` runs the
closure protocol itself: the closure is `compute_loss(model, inputs, return_outputs=True)` and the
step happens there. The Trainer's later `optimizer.step()` is then a no-op. What comes from where:

- hyperparameters (lr as the peak, weight decay, clipping as `grad_clip`) from `sharp_config`;
  TrainingArguments' `learning_rate`, `weight_decay` and `optim` do not change the update, and
  `max_grad_norm` is set to 0 (the Trainer would clip after the step has run, and under fp16 ask
  accelerate's GradScaler, which is off, to unscale); `lr_scheduler_type` shapes the lr (set
  `constant` to reproduce the tuned run's lr).
- `bf16` / `fp16` become the optimizer's `precision`: it autocasts each pass, and for fp16 scales
  each pass's loss itself (accelerate's GradScaler is switched off, it would never see a backward).
- `gradient_accumulation_steps` must be 1: each pass needs the whole batch's gradient, a SAM
  perturbation needs it before the second pass. Raise `per_device_train_batch_size` instead.
- peft models: LoRA pairs are found as with `build_optimizer(model)`.
- multi-GPU (torchrun): the optimizer averages its gradients over ranks; the closure runs under
  DDP's `no_sync`, since DDP's reducer never sees `autograd.grad`.
- `opt.counts` (fwd, bwd, grad_evals) join the Trainer's logs as `sharp_fwd`, `sharp_bwd`, `sharp_grad_evals`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import transformers
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from methods._build import build_optimizer
from methods._errors import ConfigError
from methods._optimizer import SharpOptimizer
from methods.integrations._config import sharp_config as read_config
from methods.integrations._stack_optimizer import SteppedElsewhere


def precision_of(args: transformers.TrainingArguments) -> str:
    """The optimizer's precision from TrainingArguments' bf16 / fp16 flags."""
    return "bf16" if args.bf16 else "fp16" if args.fp16 else "fp32"


class SharpTrainer(transformers.Trainer):
    """`transformers.Trainer` whose optimizer is the sharptune method in `sharp_config`."""

    def __init__(self, *args: Any, sharp_config: str | Path | Mapping[str, Any], **kwargs: Any) -> None:
        self.sharp_method, self.sharp_hparams = read_config(sharp_config)
        if (kwargs.get("optimizers") or (None, None))[0] is not None:
            raise ConfigError("SharpTrainer builds its optimizer from sharp_config; do not pass optimizers=")
        super().__init__(*args, **kwargs)
        if self.args.gradient_accumulation_steps != 1:
            raise ConfigError(f"SharpTrainer: gradient_accumulation_steps must be 1, got "
                              f"{self.args.gradient_accumulation_steps}: {self.sharp_method} takes each gradient "
                              "from one batch's closure; raise per_device_train_batch_size instead")
        if getattr(self.accelerator, "scaler", None) is not None:
            self.accelerator.scaler = None  # fp16: the optimizer scales each of its passes itself
        self.args.max_grad_norm = 0.0  # the Trainer would clip after the step has run; clipping is `grad_clip`
        self.sharp: SharpOptimizer | None = None

    def create_optimizer(self, model: nn.Module | None = None) -> torch.optim.Optimizer:
        if self.optimizer is None:
            self.sharp = build_optimizer(self.model if model is None else model, self.sharp_method,
                                         precision=precision_of(self.args), **self.sharp_hparams)
            self.optimizer = SteppedElsewhere(self.sharp)  # its step() is a no-op
        return self.optimizer

    def training_step(self, model: nn.Module, inputs: dict[str, Any],
                      num_items_in_batch: Tensor | int | None = None) -> Tensor:
        """One full step of the method on this batch; returns the first-pass loss.

        The loss is each batch's own mean (`num_items_in_batch` is not used): with one batch per step
        that is the Trainer's loss, and across ranks the optimizer's average makes it the global mean.
        """
        model.train()
        inputs = self._prepare_inputs(inputs)
        no_sync = model.no_sync if isinstance(model, DistributedDataParallel) else contextlib.nullcontext

        def closure() -> tuple[Tensor, Any]:
            with self.compute_loss_context_manager(), no_sync():
                return self.compute_loss(model, inputs, return_outputs=True)

        assert self.sharp is not None, "create_optimizer runs before the first training step"
        return self.sharp.step(closure)

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if self.sharp is not None and "loss" in logs:
            logs = {**logs, **{f"sharp_{k}": v for k, v in self.sharp.counts.items()}}
            if self.sharp.loss_scale.scaling:
                logs["sharp_loss_scale"] = self.sharp.loss_scale.scale
        super().log(logs, start_time)
