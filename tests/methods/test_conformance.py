"""The conformance suite every registered method must pass (one class, parametrized over list_methods()).

Contract checked (DESIGN.md §1, docs/METHODS.md "Accounting"): a step decreases the loss on a small convex-ish
problem; the passes the closure really sees equal the declared cost; state_dict round trip gives identical
next steps; the same seed gives the same result; bad hyperparameters raise a ConfigError that names the field
and lists what is allowed.
"""

from __future__ import annotations

import copy
import io

import pytest
import torch
from torch import nn

from methods import ConfigError, build_optimizer, list_methods

METHODS = [info.name for info in list_methods()]
INFO = {info.name: info for info in list_methods()}
STEPS = 10  # one IRE interval (K = 10): the 1/K curvature pass is counted exactly once


class _Tap(torch.autograd.Function):
    """Identity whose backward counts the backward passes that reach the parameters."""

    @staticmethod
    def forward(ctx, x, counter):
        ctx.counter = counter
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        ctx.counter["bwd"] += 1
        return grad, None


class PairClassifier(nn.Module):
    """Multinomial logistic regression whose weight is W + B A: convex in W, with one scale-invariant pair."""

    def __init__(self, d_in: int = 6, classes: int = 3, rank: int = 2) -> None:
        super().__init__()
        self.weight = nn.Parameter(0.1 * torch.randn(classes, d_in))
        self.bias = nn.Parameter(torch.zeros(classes))
        self.lora_B = nn.Parameter(0.3 * torch.randn(classes, rank))
        self.lora_A = nn.Parameter(0.3 * torch.randn(rank, d_in))
        self.counter = {"fwd": 0, "bwd": 0}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.counter["fwd"] += 1
        weight = _Tap.apply(self.weight + self.lora_B @ self.lora_A, self.counter)
        return x @ weight.T + _Tap.apply(self.bias, {"bwd": 0})

    def pairs(self) -> list[tuple[nn.Parameter, nn.Parameter]]:
        return [(self.lora_B, self.lora_A)]


def _problem(seed: int = 0):
    torch.manual_seed(seed)
    model = PairClassifier()
    x = torch.randn(64, 6)
    y = (x @ torch.randn(6, 3)).argmax(dim=1)
    return model, x, y


def _closure(model: nn.Module, x: torch.Tensor, y: torch.Tensor):
    def closure():
        logits = model(x)
        return nn.functional.cross_entropy(logits, y), logits
    return closure


def _build(name: str, model: PairClassifier, **hp):
    return build_optimizer(model, name, pairs=model.pairs(), **hp)


def _state(model: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize("name", METHODS)
class TestConformance:
    def test_a_step_decreases_the_loss(self, name):
        model, x, y = _problem()
        opt = _build(name, model)
        closure = _closure(model, x, y)
        first = opt.step(closure)
        assert not first.requires_grad
        with torch.no_grad():
            after = closure()[0]
        assert after < first, f"{name}: loss {first.item():.6f} -> {after.item():.6f}"
        for _ in range(STEPS):
            opt.step(closure)
        with torch.no_grad():
            assert closure()[0] < after

    def test_counted_passes_equal_the_declared_cost(self, name):
        model, x, y = _problem()
        opt = _build(name, model)
        closure = _closure(model, x, y)
        for _ in range(STEPS):
            opt.step(closure)
        declared = INFO[name].grad_evals_per_step() * STEPS
        assert model.counter["fwd"] == pytest.approx(INFO[name].forwards_per_step() * STEPS)
        assert model.counter["bwd"] == pytest.approx(declared)
        assert opt.counts == {"fwd": model.counter["fwd"], "bwd": model.counter["bwd"],
                              "grad_evals": model.counter["bwd"]}

    def test_state_dict_round_trip_gives_identical_next_steps(self, name):
        model, x, y = _problem()
        opt = _build(name, model)
        batches = [(x[i::4], y[i::4]) for i in range(4)]
        for i in range(4):  # crosses nothing yet; the next 12 steps cross an IRE re-estimate (step 10)
            opt.step(_closure(model, *batches[i % 4]))
        buffer = io.BytesIO()
        torch.save(opt.state_dict(), buffer)
        buffer.seek(0)
        twin = copy.deepcopy(model)
        twin_opt = _build(name, twin)
        twin_opt.load_state_dict(torch.load(buffer, weights_only=False))
        assert twin_opt.counts == opt.counts
        for i in range(12):
            rng = torch.get_rng_state()
            opt.step(_closure(model, *batches[i % 4]))
            torch.set_rng_state(rng)
            twin_opt.step(_closure(twin, *batches[i % 4]))
            for a, b in zip(model.parameters(), twin.parameters(), strict=True):
                assert torch.equal(a, b), f"{name}: diverged at step {i} after load_state_dict"
        assert twin_opt.counts == opt.counts

    def test_same_seed_same_result(self, name):
        runs = []
        for _ in range(2):
            model, x, y = _problem(seed=3)
            opt = _build(name, model)
            for _ in range(STEPS + 2):
                opt.step(_closure(model, x, y))
            runs.append(_state(model))
        for a, b in zip(*runs, strict=True):
            assert torch.equal(a, b)

    @pytest.mark.parametrize("field, value, allowed", [
        ("no_such_knob", 1.0, "valid:"),
        ("rho", -0.1, "[0, inf]"),
        ("gamma", 0.0, "(0, 1]"),
        ("gamma", 1.5, "(0, 1]"),
        ("schedule", "step", "constant, linear, cosine"),
        ("rho_schedule", "step", "constant, linear, cosine"),
        ("lr", -1.0, "(0, inf]"),
    ])
    def test_bad_hyperparameters_raise_config_error(self, name, field, value, allowed):
        model, _, _ = _problem()
        with pytest.raises(ConfigError) as excinfo:
            _build(name, model, **{field: value})
        message = str(excinfo.value)
        assert field in message
        if field in INFO[name].hyperparameters:
            assert allowed in message  # the valid range / choices
        else:
            assert "unknown hyperparameter" in message and "valid: " in message and "lr" in message

    def test_hparams_resolved_and_method_named(self, name):
        model, _, _ = _problem()
        opt = _build(name, model)
        assert opt.method == name
        assert opt.hparams["base"] == INFO[name].default_base
        assert set(opt.hparams) <= INFO[name].hyperparameters
        assert opt.param_groups is opt.base.param_groups


VARIANTS = [  # non-default parts whose extra passes / state the presets alone do not exercise
    ("sam", {"preconditioner": "fisher"}),
    ("sam", {"preconditioner": "ema_sq", "precond_normalize": "grad"}),
    ("psam", {"base": "sgd", "preconditioner": "ema_sq"}),
    ("asam", {"base": "adamw", "preconditioner": "adam", "rho_schedule": "cosine", "total_steps": 20}),
    ("admire", {"curvature": "adam", "warmup": 3, "ire_interval": 5, "kappa_decay": True}),
    ("sam_ire", {"curvature": "grad_sq", "grad_clip": 0.5}),
    ("nbar", {"schedule": "linear", "total_steps": 20, "base": "sgd", "nesterov": True}),
]


def _variant_id(case) -> str:
    name, hp = case.values if hasattr(case, "values") else case
    return f"{name}-{'-'.join(hp)}"


@pytest.mark.parametrize("name, hp", VARIANTS, ids=[_variant_id(c) for c in VARIANTS])
def test_variants_count_and_round_trip(name, hp):
    model, x, y = _problem()
    opt = _build(name, model, **hp)
    for _ in range(STEPS):
        opt.step(_closure(model, x, y))
    declared = INFO[name].grad_evals_per_step(**hp) * STEPS
    assert model.counter["bwd"] == opt.counts["grad_evals"] == pytest.approx(declared)
    assert model.counter["fwd"] == opt.counts["fwd"] == pytest.approx(INFO[name].forwards_per_step(**hp) * STEPS)
    twin = copy.deepcopy(model)
    twin_opt = _build(name, twin, **hp)
    twin_opt.load_state_dict(copy.deepcopy(opt.state_dict()))
    for _ in range(7):
        opt.step(_closure(model, x, y))
        twin_opt.step(_closure(twin, x, y))
    for a, b in zip(model.parameters(), twin.parameters(), strict=True):
        assert torch.equal(a, b)


def test_every_preset_named_by_the_spec_is_registered():
    assert set(METHODS) >= {"sgd", "adamw", "sam", "asam", "psam", "fsam", "pfsam", "obar", "nbar", "lora_sam",
                            "sgd_ire", "admire", "sam_ire"}
    for info in list_methods():
        assert info.citation and info.description and info.search_space
