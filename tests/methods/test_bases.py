"""Any torch.optim optimizer and pytorch-optimizer's base optimizers as the `base` of a preset."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from methods import ConfigError, build_optimizer, comparators_installed, get_method


def _problem():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3))
    x, y = torch.randn(32, 6), torch.randint(0, 3, (32,))
    return model, x, y


@pytest.mark.skipif(not comparators_installed(), reason="extra comparators not installed")
def test_sam_with_base_lion_is_sam_around_the_library_lion() -> None:
    import pytorch_optimizer

    model, x, y = _problem()
    opt = build_optimizer(model, "sam", base="lion", lr=1e-3, betas=(0.9, 0.99), rho=0.05)
    assert type(opt.base) is pytorch_optimizer.Lion
    assert opt.hparams["base"] == "lion" and "momentum" not in opt.hparams
    assert opt.base.param_groups[0]["betas"] == (0.9, 0.99)
    closure = lambda: (nn.functional.cross_entropy(model(x), y), None)  # noqa: E731
    first = opt.step(closure)
    for _ in range(9):
        opt.step(closure)
    with torch.no_grad():
        assert closure()[0] < first
    assert opt.counts["grad_evals"] == 20 == 10 * get_method("sam").grad_evals_per_step(base="lion")
    twin = copy.deepcopy(model)
    twin_opt = build_optimizer(twin, "sam", base="lion", lr=1e-3, rho=0.05)
    twin_opt.load_state_dict(copy.deepcopy(opt.state_dict()))
    for _ in range(3):
        opt.step(closure)
        twin_opt.step(lambda: (nn.functional.cross_entropy(twin(x), y), None))
    for a, b in zip(model.parameters(), twin.parameters(), strict=True):
        assert torch.equal(a, b)
    # Lion's default lr is its own (1e-4), not AdamW's
    assert build_optimizer(_problem()[0], "sam", base="lion").hparams["lr"] == 1e-4


def test_a_torch_optim_base_gets_the_knobs_its_constructor_takes() -> None:
    model, _, _ = _problem()
    opt = build_optimizer(model, "asam", base="rmsprop", lr=0.01, momentum=0.5, eps=1e-6, weight_decay=1e-4)
    assert type(opt.base) is torch.optim.RMSprop
    group = opt.base.param_groups[0]
    assert (group["momentum"], group["eps"], group["weight_decay"]) == (0.5, 1e-6, 1e-4)
    assert "betas" not in opt.hparams  # RMSprop takes no betas: not resolved, not passed


@pytest.mark.parametrize("base, hp, message", [
    ("no_such_optimizer", {}, "base must be sgd, adamw, a torch.optim optimizer"),
    ("lbfgs", {}, "base must be"),  # needs a closure in step(): not a base
    ("rmsprop", {"betas": (0.9, 0.99)}, "base 'rmsprop' of sam takes no betas"),
    ("sgd", {"betas": (0.9, 0.99)}, "betas belongs to base 'adamw'"),
])
def test_bad_bases_and_knobs_raise_config_errors(base: str, hp: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        build_optimizer(_problem()[0], "sam", base=base, **hp)


def test_preconditioner_adam_needs_adamw_whatever_the_other_base() -> None:
    with pytest.raises(ConfigError, match="preconditioner 'adam'.*base 'radam'"):
        build_optimizer(_problem()[0], "psam", base="radam")
