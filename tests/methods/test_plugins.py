"""`register_method`: a method from outside the composable step works like a preset.

The example is the README's: a davda54-style SAM (closure zeroes, runs forward and backward, returns
the loss) registered through `ClosureAdapter`. Checked: the declared cost equals the counted passes,
the spec accepts it with its default space, the preflight steps it, export resolves it, bad
declarations are refused, and an installed package registers methods through an entry point.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import methods
from methods import ClosureAdapter, ConfigError, _registry, build_optimizer, get_method, hparam, register_method
from tuner.hparams import optimizer_hparams
from tuner.preflight import run_preflight
from tuner.spec import SpecError, load_spec


class TwoStepSAM(torch.optim.Optimizer):
    """davda54/sam in brief: ascend to θ + ρ g/‖g‖, take the gradient there, restore θ, base step."""

    def __init__(self, params, rho: float, **base_kwargs) -> None:
        super().__init__(params, {"rho": rho})
        self.base_optimizer = torch.optim.SGD(self.param_groups, **base_kwargs)
        self.param_groups = self.base_optimizer.param_groups

    @torch.no_grad()
    def step(self, closure):
        params = [p for g in self.param_groups for p in g["params"] if p.grad is not None]
        norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params]))
        eps = [p.grad * (self.param_groups[0]["rho"] / (norm + 1e-12)) for p in params]
        torch._foreach_add_(params, eps)
        with torch.enable_grad():
            closure()
        torch._foreach_sub_(params, eps)
        self.base_optimizer.step()


def _build(params, hp, context):
    inner = TwoStepSAM(params, rho=hp["rho"], lr=hp["lr"], momentum=hp["my_momentum"])
    return ClosureAdapter(inner, info=get_method("my_sam"), hparams=hp, context=context)


@pytest.fixture
def my_sam(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(_registry, "_REGISTRY", dict(_registry._REGISTRY))  # registered for this test only
    return register_method(
        "my_sam", description="davda54-style SAM", citation="Foret et al., ICLR 2021", build=_build,
        hyperparameters={"lr": 0.05, "rho": 0.05, "my_momentum": hparam(0.0, low=0.0, high=0.99, doc="momentum")},
        search_space={"lr": {"type": "float", "low": 0.01, "high": 0.2, "log": True},
                      "rho": {"type": "float", "low": 0.01, "high": 0.1, "log": True}},
        grad_evals_per_step=2)


def test_a_plug_in_counts_what_it_declares_and_matches_our_sam(my_sam) -> None:
    torch.manual_seed(0)
    model, twin = nn.Linear(5, 3), nn.Linear(5, 3)
    twin.load_state_dict(model.state_dict())
    x, y = torch.randn(16, 5), torch.randint(0, 3, (16,))
    plug = build_optimizer(model, "my_sam", rho=0.1)
    ours = build_optimizer(twin, "sam", lr=0.05, momentum=0.0, rho=0.1)
    for _ in range(4):
        plug.step(lambda: (nn.functional.cross_entropy(model(x), y), None))
        ours.step(lambda: (nn.functional.cross_entropy(twin(x), y), None))
    assert plug.counts == {"fwd": 8, "bwd": 8, "grad_evals": 8} == ours.counts
    assert my_sam.grad_evals_per_step() * 4 == 8
    for a, b in zip(model.parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(a, b)
    assert "my_sam" in {m.name for m in methods.list_methods()}
    with pytest.raises(ConfigError, match="unknown hyperparameter 'momentum' for method 'my_sam'"):
        build_optimizer(model, "my_sam", momentum=0.9)
    with pytest.raises(ConfigError, match=r"my_momentum must be in \[0, 0.99\]"):
        build_optimizer(model, "my_sam", my_momentum=1.5)
    plug.hparams["grad_clip"] = 1.0  # as the trainer sets a spec's grad_clip: this driver cannot honour it
    with pytest.raises(ConfigError, match="cannot clip"):
        plug.step(lambda: (model(x).sum(), None))


def test_a_plug_in_works_in_a_spec_like_a_preset(my_sam, tmp_path: Path) -> None:
    text = ("name: plug\nmetric: {name: eval/loss, goal: minimize}\nworkload: {name: valley2d}\n"
            "methods: [sam, my_sam, looksam]\nbudget: {num_samples: 3, trial_grad_evals: 60}\n"
            "parameters:\n  my_momentum: {values: [0.0, 0.5], when: {method: [my_sam]}}\n")
    (tmp_path / "spec.yaml").write_text(text)
    spec = load_spec(tmp_path / "spec.yaml")
    assert set(spec.space["my_sam"]) == {"lr", "rho", "my_momentum"}
    assert spec.space["my_sam"]["rho"].high == 0.1  # its default space
    assert set(spec.space["looksam"]) >= {"lr", "rho", "looksam_k", "looksam_alpha"}
    report = run_preflight(spec, say=lambda _: None)
    assert report.configs["my_sam"] >= 2 and report.configs["looksam"] >= 2
    # the export and the trial resolve it on the same path; LookSAM's horizon follows its 1 + 1/k
    assert optimizer_hparams("my_sam", {"rho": 0.02}, 60) == {"base": "sgd", "lr": 0.05, "rho": 0.02,
                                                                "my_momentum": 0.0}
    (tmp_path / "bad.yaml").write_text(text.replace("my_momentum: {values: [0.0, 0.5]",
                                                    "my_momentum: {values: [0.0, 1.5]"))
    with pytest.raises(SpecError, match="my_momentum"):
        load_spec(tmp_path / "bad.yaml")


@pytest.mark.parametrize("change, message", [
    ({"search_space": {"beta": {"values": [1]}}}, "search_space names 'beta'"),
    ({"grad_evals_per_step": 0.5}, "at least 1"),
    ({"hyperparameters": {"lr": 0.1, "zeta": 2.0}}, "'zeta' is not one the library knows"),
    ({"hyperparameters": {"rho": 0.1}}, "every method takes lr"),
])
def test_bad_declarations_are_refused(my_sam, change: dict, message: str) -> None:
    args = dict(description="d", citation="c", build=_build, hyperparameters={"lr": 0.1},
                search_space={}, grad_evals_per_step=1)
    with pytest.raises(ConfigError, match=message):
        register_method("other", **{**args, **change})
    with pytest.raises(ValueError, match="already registered"):
        register_method("my_sam", **args)


def test_an_installed_package_registers_through_its_entry_point(monkeypatch: pytest.MonkeyPatch,
                                                                  tmp_path: Path) -> None:
    monkeypatch.setattr(_registry, "_REGISTRY", dict(_registry._REGISTRY))
    (tmp_path / "tiny_plugin.py").write_text(
        "from methods import register_method\n"
        "def register():\n"
        "    register_method('tiny_plugin_sgd', description='d', citation='c', build=None.__class__,\n"
        "                    hyperparameters={'lr': 0.1}, search_space={}, grad_evals_per_step=1)\n")
    info = tmp_path / "tiny_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tiny-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[sharptune.methods]\ntiny = tiny_plugin:register\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "tiny" in methods.load_entry_points()
    assert get_method("tiny_plugin_sgd").plugin
    sys.modules.pop("tiny_plugin", None)
