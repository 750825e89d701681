"""VaSSO against its official code: `build_optimizer(model, "vasso")` takes the same steps as the official optimizer.

`_OfficialVasso` below is BingcongLi/VaSSO at 3524bad45d63bb687120708abfef4d5842b7bf36, solver/vasso.py (unchanged
since its first commit), copied with only its registry decorator dropped; `_official_steps` repeats the official
driver (utils/engine.py::train_one_epoch: forward, zero_grad, backward, step(closure)) over torch.optim.SGD built as
solver/build.py builds it. Both run in float64 on a small MLP; after several steps the parameters must agree.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from methods import ConfigError, build_optimizer

STEPS = 8


class _OfficialVasso(torch.optim.Optimizer):
    """solver/vasso.py, as written there."""

    def __init__(self, params, base_optimizer, rho, theta) -> None:
        assert isinstance(base_optimizer, torch.optim.Optimizer), "base_optimizer must be an `Optimizer`"
        self.base_optimizer = base_optimizer
        assert 0 <= rho, f"rho should be non-negative:{rho}"
        assert theta <= 1 and theta >= 0, "theta must lives in [0, 1]."
        self.rho = rho
        self.theta = theta
        super().__init__(params, dict(rho=rho, theta=theta))
        self.param_groups = self.base_optimizer.param_groups
        for group in self.param_groups:
            group["rho"] = rho
            group["theta"] = theta

    @torch.no_grad()
    def first_step(self, zero_grad=False):
        for group in self.param_groups:
            theta = group["theta"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                if "ema" not in self.state[p]:
                    self.state[p]["ema"] = p.grad.clone().detach()
                else:
                    self.state[p]["ema"].mul_(1 - theta)
                    self.state[p]["ema"].add_(p.grad, alpha=theta)
        avg_grad_norm = self._avg_grad_norm()
        for group in self.param_groups:
            scale = group["rho"] / (avg_grad_norm + 1e-7)
            for p in group["params"]:
                if p.grad is None:
                    continue
                e_w = self.state[p]["ema"] * scale
                p.add_(e_w)
                self.state[p]["e_w"] = e_w
        if zero_grad:
            self.zero_grad()

    @torch.no_grad()
    def second_step(self, zero_grad=False):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                p.sub_(self.state[p]["e_w"])
        self.base_optimizer.step()
        if zero_grad:
            self.zero_grad()

    @torch.no_grad()
    def step(self, closure=None, **kwargs):
        assert closure is not None, "SAM requires closure, which is not provided."
        self.first_step(True)
        with torch.enable_grad():
            closure()
        self.second_step()

    def _avg_grad_norm(self):
        return torch.norm(torch.stack([self.state[p]["ema"].norm(p=2) for group in self.param_groups
                                       for p in group["params"] if p.grad is not None]), p=2)


def _setup() -> tuple[nn.Module, list[tuple[torch.Tensor, torch.Tensor]]]:
    g = torch.Generator().manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 12), nn.Tanh(), nn.Linear(12, 3)).double()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) * 0.5)
    data = [(torch.randn(16, 5, generator=g, dtype=torch.float64), torch.randint(0, 3, (16,), generator=g))
            for _ in range(STEPS)]
    return model, data


def _official_steps(model: nn.Module, data, *, lr, momentum, weight_decay, rho, theta) -> _OfficialVasso:
    base = torch.optim.SGD(model.parameters(), lr=lr, weight_decay=weight_decay, nesterov=False, momentum=momentum)
    opt = _OfficialVasso(model.parameters(), base_optimizer=base, rho=rho, theta=theta)
    for x, y in data:  # utils/engine.py::train_one_epoch
        def closure(x=x, y=y):
            loss = nn.functional.cross_entropy(model(x), y)
            loss.backward()
            return loss
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step(closure)
    return opt


def _ours(model: nn.Module, data, method: str = "vasso", **hp) -> None:
    opt = build_optimizer(model, method, **hp)
    for x, y in data:
        opt.step(lambda x=x, y=y: (nn.functional.cross_entropy(out := model(x), y), out))
    return opt


@pytest.mark.parametrize("theta", [0.9, 0.4])
def test_vasso_takes_the_official_codes_steps(theta: float) -> None:
    model, data = _setup()
    twin = copy.deepcopy(model)
    hp = {"lr": 0.1, "momentum": 0.9, "weight_decay": 1e-3, "rho": 0.2}
    official = _official_steps(model, data, theta=theta, **hp)
    ours = _ours(twin, data, vasso_theta=theta, **hp)
    for a, b in zip(model.parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(b, a, rtol=0, atol=1e-12)
    for p, q in zip(model.parameters(), twin.parameters(), strict=True):  # the average d_t itself
        torch.testing.assert_close(ours.state[q]["vasso_d"], official.state[p]["ema"], rtol=0, atol=1e-12)
    assert ours.counts["grad_evals"] == 2 * STEPS


def test_the_average_matters_theta_one_is_sam_and_below_one_is_not() -> None:
    hp = {"lr": 0.1, "momentum": 0.9, "rho": 0.2}
    runs = {}
    for name, method, extra in [("sam", "sam", {}), ("one", "vasso", {"vasso_theta": 1.0}),
                                ("half", "vasso", {"vasso_theta": 0.5})]:
        model, data = _setup()
        _ours(model, data, method, **hp, **extra)
        runs[name] = torch.cat([p.detach().flatten() for p in model.parameters()])
    torch.testing.assert_close(runs["one"], runs["sam"], rtol=0, atol=1e-7)  # ‖·‖ + 1e-7 against SAM's 1e-12
    assert (runs["half"] - runs["sam"]).abs().max() > 1e-4


@pytest.mark.parametrize(("hp", "word"), [({"preconditioner": "ema_sq"}, "unknown hyperparameter 'preconditioner'"),
                                          ({"perturb_sync": "local"}, "perturb_sync")])
def test_vasso_refuses_what_its_rule_does_not_define(hp: dict, word: str) -> None:
    model, _ = _setup()
    with pytest.raises(ConfigError, match=word):
        build_optimizer(model, "vasso", **hp)


@pytest.mark.parametrize("bad_pass", [2, 4])  # the perturbed pass of the first step, or of the second
def test_an_fp16_overflow_skips_the_step_and_keeps_the_average_as_it_was(bad_pass: int) -> None:
    model, data = _setup()
    model.float()
    opt = build_optimizer(model, "vasso", lr=0.1, rho=0.2, precision="fp16")
    passes = iter(range(1, 100))
    x, y = data[0][0].float(), data[0][1]

    def closure():
        out = model(x)
        loss = nn.functional.cross_entropy(out, y)
        return (loss * float("inf") if next(passes) == bad_pass else loss), out

    if bad_pass == 4:
        opt.step(closure)
    before = {id(p): opt.state[p]["vasso_d"].clone() for p in model.parameters() if "vasso_d" in opt.state[p]}
    opt.step(closure)
    assert opt.loss_scale.skipped_steps == 1
    after = {id(p): opt.state[p]["vasso_d"] for p in model.parameters() if "vasso_d" in opt.state[p]}
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
