"""On an accelerator a training step makes no host transfer or sync (issue 11).

Run on CPU with `methods._device.FORCE_ACCELERATOR_PATH` set: every code path that would copy to the
host or wait on the device (Fisher label sampling, IRE mask selection, the trainer's loss and
finiteness check) takes its accelerator branch, and `Tensor.cpu`, `.numpy`, `.item` and `.tolist` are
counted while a step of every preset runs through the trainer's step loop. Calls from inside
`torch.optim` are not ours to count: the base SGD/AdamW keeps its `step` counter as a CPU scalar on
every device, so its `.item()` reads host memory and never waits on the accelerator.
"""

from __future__ import annotations

import sys
from collections import Counter
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from methods import _device, build_optimizer, list_methods
from tuner.trial.trainer import CHECK_EVERY, Trainer

HOST_CALLS = ("cpu", "numpy", "item", "tolist")


class _PairNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inp = nn.Linear(8, 16)
        self.lora_A = nn.Parameter(0.3 * torch.randn(4, 16))
        self.lora_B = nn.Parameter(0.3 * torch.randn(3, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.inp(x)) @ (self.lora_B @ self.lora_A).T


class _Workload:
    """The least a Trainer needs: a model, batches and a closure returning (loss, logits)."""

    def __init__(self) -> None:
        torch.manual_seed(0)
        self.model = _PairNet()
        self.pairs = [(self.model.lora_B, self.model.lora_A)]
        self.x, self.y = torch.randn(32, 8), torch.randint(0, 3, (32,))

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x, self.y

    def closure(self, batch: Any):
        def run():
            logits = self.model(batch[0])
            return F.cross_entropy(logits, batch[1]), logits
        return run


def _variants() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for info in list_methods():
        hp: dict[str, Any] = {"lr": 0.01}
        if info.preset.ire:  # a new mask in every counted step, from Fisher curvature
            hp.update(warmup=0, ire_interval=1, curvature="fisher")
        out.append((info.name, hp))
        if "preconditioner" in info.hyperparameters:
            out.append((info.name, {**hp, "preconditioner": "fisher"}))
    return out


@pytest.mark.parametrize(("method", "hparams"), _variants(), ids=lambda v: str(v))
def test_a_step_on_the_accelerator_path_makes_no_host_call(method: str, hparams: dict,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_device, "FORCE_ACCELERATOR_PATH", True)
    wl = _Workload()
    accepted = _info(method).hyperparameters
    hparams = {k: v for k, v in {**hparams, "total_steps": 100}.items() if k in accepted}
    opt = build_optimizer(wl.model, method, pairs=wl.pairs if _info(method).needs_pairs else None, **hparams)
    trainer = Trainer(wl, opt, eval_every=1000, max_steps=100)
    for _ in range(2):  # buffers and statistics allocated outside the counted steps
        trainer._non_finite(trainer._one_step(), read=False)
    calls: Counter[str] = Counter()
    for name in HOST_CALLS:
        original = getattr(torch.Tensor, name)

        def counting(self, *args, _name=name, _original=original, **kwargs):
            if "torch/optim/" not in sys._getframe(1).f_code.co_filename.replace("\\", "/"):
                calls[_name] += 1
            return _original(self, *args, **kwargs)
        monkeypatch.setattr(torch.Tensor, name, counting)
    for _ in range(3):
        assert trainer.step % CHECK_EVERY != 0
        trainer._non_finite(trainer._one_step(), read=False)
    monkeypatch.undo()
    assert not calls, dict(calls)
    assert opt.counts["grad_evals"] > 0


def _info(method: str):
    return next(i for i in list_methods() if i.name == method)
