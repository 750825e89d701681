"""Mixed precision in the optimizer (issue 13): `precision="bf16"|"fp16"` on `build_optimizer`.

bf16: every pass of every preset runs under autocast and the loss still falls. fp16: the optimizer
scales each pass's loss and unscales the gradients before any norm, so a step matches the fp32 step
to fp16 accuracy; an injected inf skips the whole step (θ restored, even mid-perturbation) and halves
the scale, finite steps grow it after `growth_interval`, and the scale survives `state_dict`. CPU
autocast runs both dtypes, so none of this needs CUDA.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from methods import ConfigError, build_optimizer, list_methods

INFO = {info.name: info for info in list_methods() if not info.plugin}  # the built-in presets


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inp = nn.Linear(6, 16)
        self.lora_A = nn.Parameter(0.3 * torch.randn(4, 16))
        self.lora_B = nn.Parameter(0.3 * torch.randn(3, 4))
        self.dtypes: list[torch.dtype] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = torch.tanh(self.inp(x))
        self.dtypes.append(hidden.dtype)
        return nn.functional.linear(hidden, self.lora_B @ self.lora_A)


def _problem(seed: int = 0):
    torch.manual_seed(seed)
    model = _Net()
    x = torch.randn(64, 6)
    y = (x @ torch.randn(6, 3)).argmax(dim=1)
    return model, x, y


def _build(model: _Net, name: str, **kw):
    return build_optimizer(model, name, pairs=[(model.lora_B, model.lora_A)], **kw)


def _closure(model, x, y, poison=None):
    def closure():
        logits = model(x)
        if poison is not None and poison():  # an overflow in the forward pass: loss and logits inf
            logits = logits * float("inf")
        return nn.functional.cross_entropy(logits.float(), y), logits
    return closure


@pytest.mark.parametrize("name", sorted(INFO))
def test_bf16_autocast_runs_every_pass_of_every_preset_and_the_loss_falls(name):
    model, x, y = _problem()
    opt = _build(model, name, precision="bf16")
    closure = _closure(model, x, y)
    losses = [opt.step(closure) for _ in range(10)]
    assert all(torch.isfinite(loss) for loss in losses)
    assert losses[-1] < losses[0]
    assert set(model.dtypes) == {torch.bfloat16}  # every pass the optimizer ran was autocast
    assert len(model.dtypes) == opt.counts["fwd"] == pytest.approx(INFO[name].forwards_per_step() * 10)
    assert all(p.dtype == torch.float32 for p in model.parameters())  # master weights stay fp32


@pytest.mark.parametrize("name", ["asam", "psam", "fsam", "nbar", "obar", "admire", "sam_ire"])  # every part
def test_an_fp16_step_is_the_fp32_step_to_fp16_accuracy(name):
    """The gradients are unscaled before every norm: a scaled one would move θ by 2^16 times too much."""
    model, x, y = _problem()
    twin = copy.deepcopy(model)
    start = [p.detach().clone() for p in model.parameters()]
    opt16, opt32 = _build(model, name, precision="fp16"), _build(twin, name)
    opt16.step(_closure(model, x, y))
    opt32.step(_closure(twin, x, y))
    assert set(model.dtypes) == {torch.float16}
    assert opt16.loss_scale.scale == 2.0 ** 16 and opt16.loss_scale.skipped_steps == 0
    d16 = torch.cat([(p - s).flatten() for p, s in zip(model.parameters(), start, strict=True)])
    d32 = torch.cat([(p - s).flatten() for p, s in zip(twin.parameters(), start, strict=True)])
    assert d32.norm() > 0
    assert (d16 - d32).norm() < 0.05 * d32.norm(), name


@pytest.mark.parametrize(("name", "bad_pass"), [("adamw", 1), ("nbar", 1), ("sam", 2), ("fsam", 2),
                                              ("sam_ire", 3)])  # 2: the perturbed pass; 3: IRE's Fisher pass
def test_an_fp16_overflow_in_any_pass_skips_the_step_and_halves_the_scale(name, bad_pass):
    model, x, y = _problem()
    opt = _build(model, name, precision="fp16")
    opt.loss_scale.growth_interval = 2
    passes = iter(range(1, 100))
    before = [p.detach().clone() for p in model.parameters()]
    loss = opt.step(_closure(model, x, y, poison=lambda: next(passes) == bad_pass))
    assert opt.counts["fwd"] == bad_pass  # the step stopped at the overflowing pass
    assert torch.isfinite(loss) == (bad_pass > 1)
    assert all(torch.equal(p, b) for p, b in zip(model.parameters(), before, strict=True))  # θ restored exactly
    assert opt.loss_scale.scale == 2.0 ** 15 and opt.loss_scale.skipped_steps == 1
    assert opt.passes.step == 0 and "ire_mask" not in opt.state[model.inp.weight]  # nothing advanced
    clean = _closure(model, x, y)
    opt.step(clean)
    assert any(not torch.equal(p, b) for p, b in zip(model.parameters(), before, strict=True))
    assert opt.loss_scale.scale == 2.0 ** 15
    opt.step(clean)
    assert opt.loss_scale.scale == 2.0 ** 16  # grown after growth_interval finite steps

    twin = copy.deepcopy(model)
    restored = _build(twin, name, precision="fp16")
    restored.load_state_dict(opt.state_dict())
    assert restored.loss_scale.state_dict() == opt.loss_scale.state_dict()
    with pytest.raises(ConfigError, match="precision 'fp16', not 'bf16'"):
        _build(copy.deepcopy(model), name, precision="bf16").load_state_dict(opt.state_dict())


def test_an_unknown_precision_is_a_config_error():
    model = _Net()
    with pytest.raises(ConfigError, match="precision must be one of fp32, bf16, fp16; got 'fp8'"):
        _build(model, "sam", precision="fp8")
