"""Torch-style closures (issue 13): `closure_style="backward"` takes the same step as the default protocol.

A backward closure zeroes the gradients, calls backward and returns the loss, as davda54/sam users
write it. Every preset that does not need the model's outputs must take exactly the default step with
it (several steps, so momentum, AdamW moments, schedules and IRE masks all take part); the ones that
need the outputs refuse it with a ConfigError that names the alternative.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from methods import ConfigError, build_optimizer, list_methods
from methods._protocol import check_closure_style

INFO = {info.name: info for info in list_methods() if not info.plugin}  # the built-in presets
NEEDS_OUTPUTS = {"fsam", "pfsam", "admire", "sgd_ire", "sam_ire"}  # functional, or IRE's default Fisher curvature
STEPS = 12  # crosses an IRE re-estimate (K = 10)


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inp = nn.Linear(6, 8)
        self.drop = nn.Dropout(0.2)  # replayed: both passes must see one mask in both protocols
        self.lora_A = nn.Parameter(0.3 * torch.randn(4, 8))
        self.lora_B = nn.Parameter(0.3 * torch.randn(3, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(torch.tanh(self.inp(x))) @ (self.lora_B @ self.lora_A).T


def _hparams(name: str) -> dict:
    return {"curvature": "grad_sq", "warmup": 0} if INFO[name].preset.ire else {}


def _pair(name: str, **hp):
    torch.manual_seed(0)
    model = _Net()
    twin = copy.deepcopy(model)
    pairs = lambda m: [(m.lora_B, m.lora_A)]  # noqa: E731
    ours = build_optimizer(model, name, pairs=pairs(model), **hp)
    torch_style = build_optimizer(twin, name, pairs=pairs(twin), closure_style="backward", **hp)
    return model, twin, ours, torch_style


@pytest.mark.parametrize("name", [n for n in INFO if n not in {"fsam", "pfsam"}])
def test_a_backward_closure_takes_the_default_protocols_step(name):
    model, twin, ours, torch_style = _pair(name, **_hparams(name))
    x, y = torch.randn(32, 6), torch.randint(0, 3, (32,))
    for step in range(STEPS):
        xb, yb = x[step % 4::4], y[step % 4::4]

        def closure(xb=xb, yb=yb):
            logits = model(xb)
            return nn.functional.cross_entropy(logits, yb), logits

        def backward_closure(xb=xb, yb=yb):
            torch_style.zero_grad()
            loss = nn.functional.cross_entropy(twin(xb), yb)
            loss.backward()
            return loss

        seed = torch.seed()
        first = ours.step(closure)
        torch.manual_seed(seed)
        second = torch_style.step(backward_closure)
        assert torch.allclose(first, second, atol=1e-6)
    for p, q in zip(model.parameters(), twin.parameters(), strict=True):
        assert torch.allclose(p, q, atol=1e-6), name
    assert torch_style.counts == ours.counts
    assert torch_style.counts["grad_evals"] == pytest.approx(INFO[name].grad_evals_per_step(**_hparams(name)) * STEPS)


@pytest.mark.parametrize(("name", "hp", "alternative"), [
    ("fsam", {}, "method sam"),
    ("pfsam", {}, "method sam"),
    ("psam", {"preconditioner": "fisher"}, "preconditioner: ema_sq"),
    ("admire", {}, "curvature: grad_sq"),
    ("sam_ire", {"curvature": "fisher"}, "curvature: grad_sq"),
])
def test_presets_that_need_the_outputs_refuse_a_backward_closure(name, hp, alternative):
    model = _Net()
    with pytest.raises(ConfigError, match=alternative) as info:
        build_optimizer(model, name, pairs=[(model.lora_B, model.lora_A)], closure_style="backward", **hp)
    assert "closure_style='outputs'" in str(info.value)


def test_unknown_closure_style_and_fp16_backward_are_config_errors():
    info = INFO["sam"]
    hp = info.resolve({})
    with pytest.raises(ConfigError, match="closure_style must be one of outputs, backward"):
        check_closure_style(info, hp, "torch", "fp32")
    with pytest.raises(ConfigError, match="precision 'bf16'"):
        check_closure_style(info, hp, "backward", "fp16")
    assert {n for n in INFO if _refuses(n)} == NEEDS_OUTPUTS
    plugins = [info.name for info in list_methods() if info.plugin]
    for name in plugins[:1]:  # plug-ins run their own protocol: they keep the defaults
        with pytest.raises(ConfigError, match="plug-in method"):
            build_optimizer(_Net(), name, closure_style="backward")


def _refuses(name: str) -> bool:
    info = INFO[name]
    try:
        check_closure_style(info, info.resolve({}, need_horizon=False), "backward", "fp32")
    except ConfigError:
        return True
    return False


@pytest.mark.parametrize("method", ["sgd", "sam", "adamw"])
def test_a_backward_closure_under_the_default_style_names_the_fix(method: str) -> None:
    """A davda54-style closure (it calls backward itself) under the default style: one ConfigError that
    names closure_style="backward", not autograd's "backward through the graph a second time"."""
    torch.manual_seed(0)
    model, x, y = nn.Linear(3, 2), torch.randn(4, 3), torch.randint(0, 2, (4,))

    def closure():
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        return loss

    with pytest.raises(ConfigError, match='closure_style="backward"'):
        build_optimizer(model, method, lr=0.1).step(closure)
    build_optimizer(model, method, lr=0.1, closure_style="backward").step(closure)  # and that style takes it
