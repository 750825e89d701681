"""The public API of `methods` (DESIGN.md §1): LoRA pairs found on a peft model, clear errors, configs that
round-trip through YAML and JSON, no tuner dependencies, LR schedulers on the optimizer."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

from methods import ConfigError, MethodInfo, build_optimizer, find_lora_pairs, get_method, list_methods, load_config

REPO = Path(__file__).resolve().parents[2]


class _Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.q = nn.Linear(6, 6)
        self.v = nn.Linear(6, 6)
        self.head = nn.Linear(6, 3)

    def forward(self, x):
        return self.head(torch.tanh(self.q(x)) + self.v(x))


def _lora_model():
    peft = pytest.importorskip("peft")
    torch.manual_seed(0)
    return peft.get_peft_model(_Tiny(), peft.LoraConfig(r=2, lora_alpha=4, target_modules=["q", "v"]))


def _closure(model, x, y):
    def closure():
        logits = model(x)
        return nn.functional.cross_entropy(logits, y), logits
    return closure


def test_build_optimizer_finds_the_lora_pairs_of_a_peft_model():
    model = _lora_model()
    pairs = find_lora_pairs(model)
    named = {id(p): n for n, p in model.named_parameters()}
    assert [(named[id(b)], named[id(a)]) for b, a in pairs] == [
        ("base_model.model.q.lora_B.default.weight", "base_model.model.q.lora_A.default.weight"),
        ("base_model.model.v.lora_B.default.weight", "base_model.model.v.lora_A.default.weight")]
    assert all(b.shape == (6, 2) and a.shape == (2, 6) for b, a in pairs)

    x, y = torch.randn(8, 6), torch.randint(0, 3, (8,))
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    for method in ("nbar", "obar", "lora_sam"):  # need pairs; none passed explicitly
        opt = build_optimizer(model, method, lr=1e-2)
        for _ in range(3):
            opt.step(_closure(model, x, y))
        assert opt.counts["grad_evals"] == 3 * get_method(method).grad_evals_per_step()
    for n, p in model.named_parameters():  # only the adapters train
        if n in frozen:
            assert torch.equal(p, frozen[n])
    assert any(b.abs().sum() > 0 for b, _ in pairs)  # peft starts B at 0; it has moved


def test_methods_that_need_pairs_say_so_without_any():
    model = _Tiny()
    for method in (m.name for m in list_methods() if m.needs_pairs):
        with pytest.raises(ConfigError, match="pairs"):
            build_optimizer(model, method)
    build_optimizer(model, "sam")  # the others do not need any


def test_unknown_method_lists_every_valid_one():
    with pytest.raises(ConfigError) as excinfo:
        build_optimizer(_Tiny(), "samm")
    assert "samm" in str(excinfo.value)
    assert all(info.name in str(excinfo.value) for info in list_methods())
    with pytest.raises(ConfigError):
        get_method("samm")


def test_method_info_describes_each_preset():
    names = [info.name for info in list_methods()]
    assert names == sorted(names)
    for info in list_methods():
        assert isinstance(info, MethodInfo) and get_method(info.name) is info
        assert info.default_base in ("sgd", "adamw") and info.citation
        assert set(info.search_space) <= info.hyperparameters
        for spec in info.search_space.values():
            assert spec["type"] in ("float", "int", "categorical")
            if spec["type"] != "categorical":
                assert spec["low"] < spec["high"]
        with pytest.raises(AttributeError):
            info.name = "other"  # frozen


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_load_config_round_trip(tmp_path, suffix):
    model = _Tiny()
    opt = build_optimizer(model, "nbar", pairs=[(model.q.weight, model.v.weight)], lr=3e-4, mu0=0.2,
                          schedule="cosine", total_steps=100, betas=(0.8, 0.99))
    exported = {"method": opt.method, "hyperparameters": {k: list(v) if isinstance(v, tuple) else v
                                                          for k, v in opt.hparams.items()},
                "provenance": {"experiment": "demo", "trial": 3, "metric": 0.9}}
    path = tmp_path / f"best{suffix}"
    path.write_text(json.dumps(exported) if suffix == ".json" else yaml.safe_dump(exported))
    config = load_config(path)
    assert config["method"] == "nbar" and "provenance" not in config
    again = build_optimizer(model, pairs=[(model.q.weight, model.v.weight)], **config)
    assert again.method == opt.method and again.hparams == opt.hparams  # betas back to a tuple

    flat = tmp_path / f"flat{suffix}"
    data = {"method": "sam", "rho": 0.1, "lr": 0.05}
    flat.write_text(json.dumps(data) if suffix == ".json" else yaml.safe_dump(data))
    assert build_optimizer(model, **load_config(flat)).hparams["rho"] == 0.1


def test_load_config_errors_are_config_errors(tmp_path):
    with pytest.raises(ConfigError):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("lr: 0.1\n")
    with pytest.raises(ConfigError, match="method"):
        load_config(bad)
    unknown = tmp_path / "unknown.json"
    unknown.write_text(json.dumps({"method": "sam", "hyperparameters": {"rhoo": 0.1}}))
    with pytest.raises(ConfigError, match="rhoo"):
        build_optimizer(_Tiny(), **load_config(unknown))


def test_methods_imports_no_tuner_dependencies():
    code = ("import sys, methods, methods.diagnostics; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'ray', 'mlflow', 'optuna', 'tuner'}); "
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""


def test_lr_scheduler_drives_the_optimizer():
    torch.manual_seed(0)
    w = nn.Parameter(torch.ones(3))
    opt = build_optimizer([w], "sam", lr=0.1, momentum=0.0, rho=0.0)
    scheduler = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    deltas = []
    for _ in range(3):
        before = w.detach().clone()
        opt.step(lambda: ((w * w).sum() / 2, None))  # gradient w: Δw = −lr · w
        deltas.append(((before - w.detach()) / before).mean().item())
        scheduler.step()
    assert deltas == pytest.approx([0.1, 0.05, 0.025])
    assert opt.param_groups[0]["lr"] == pytest.approx(0.0125)
    sd = opt.state_dict()
    opt.load_state_dict(sd)  # still the same groups for the scheduler afterwards
    scheduler.step()
    assert opt.base.param_groups[0]["lr"] == pytest.approx(0.00625)
