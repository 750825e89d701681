"""The Optuna space: conditional per method, never a parameter a method does not take; grid points."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from methods import get_method
from tuner.hparams import optimizer_hparams
from tuner.hparams import split_values as split_config
from tuner.run.initial_trials import spec_distributions
from tuner.run.optuna_space import GRID_PARAM, build_define, grid_points, grid_search_space, optuna_name
from tuner.space import Param
from tuner.spec import load_spec

REPO = Path(__file__).resolve().parents[3]
SPACES = REPO / "search_spaces"
optuna.logging.set_verbosity(optuna.logging.WARNING)


def _sample(spec_path: Path, n: int, sampler: optuna.samplers.BaseSampler | None = None) -> list[dict]:
    spec = load_spec(spec_path)
    define = build_define(spec)
    study = optuna.create_study(sampler=sampler or optuna.samplers.RandomSampler(seed=0))
    configs: list[dict] = []

    def objective(trial: optuna.Trial) -> float:
        configs.append(define(trial))
        return 0.0
    study.optimize(objective, n_trials=n)  # optimize, not ask/tell: GridSampler stops the study when done
    return configs


@pytest.mark.parametrize("name", ["all_methods.yaml", "bar.yaml", "fsam.yaml", "ire.yaml", "sam.yaml", "smoke.yaml"])
def test_never_a_parameter_the_method_does_not_take(name: str) -> None:
    spec = load_spec(SPACES / name)
    seen = set()
    for config in _sample(SPACES / name, 150):
        method, hparams, overrides = split_config(config)
        seen.add(method)
        assert set(hparams) <= get_method(method).hyperparameters
        assert set(overrides) <= set(spec.workload.options)
        # every sampled config resolves along the trial's own path (horizon from the budget)
        optimizer_hparams(method, hparams, spec.budget.trial_grad_evals)
    assert seen == set(spec.methods)


def test_conditionals_and_ranges_hold() -> None:
    for config in _sample(SPACES / "bar.yaml", 100):
        if config["method"] == "lora_sam":
            assert 0.05 <= config["rho"] <= 0.2 and "mu0" not in config and "schedule" not in config
        elif config["method"] == "adamw":  # plain LoRA: neither SAM's nor BAR's knobs
            assert not {"rho", "mu0", "schedule"} & set(config)
        else:
            assert "rho" not in config and config["schedule"] in ("linear", "cosine", "constant")
            assert 0.2 <= config["mu0"] <= 2.0


def test_names_per_method_keep_distributions_apart() -> None:
    spec = load_spec(SPACES / "all_methods.yaml")
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0, n_startup_trials=5))
    define = build_define(spec)
    for i in range(30):
        trial = study.ask()
        define(trial)
        study.tell(trial, float(i % 7))
    names = {n for t in study.trials for n in t.params}
    assert {"method", "sgd/lr", "adamw/lr", "obar/mu0"} <= names
    assert "lr" not in names


def test_method_parameters_helper() -> None:
    spec = load_spec(SPACES / "smoke.yaml")
    assert list(spec.space["sgd"]) == ["lr", "momentum"]
    assert list(spec.space["sam"]) == ["lr", "rho", "momentum"]


def test_grid_is_one_product_per_method() -> None:
    spec = load_spec(SPACES / "claim_balancedness.yaml")
    points = grid_points(spec)
    assert len(points) == 12 == spec.budget.num_samples
    assert len({tuple(sorted(p.items())) for p in points}) == 12
    assert all("rho" not in p for p in points if p["method"] != "sam")
    assert all("mu0" in p for p in points if p["method"] in ("obar", "nbar"))
    sampler = optuna.samplers.GridSampler(grid_search_space(spec), seed=0)
    configs = _sample(SPACES / "claim_balancedness.yaml", 12, sampler)
    assert sorted(map(repr, configs)) == sorted(map(repr, points))


def test_grid_respects_when(tmp_path: Path) -> None:
    path = tmp_path / "g.yaml"
    path.write_text("""
name: g
metric: {name: eval/loss, goal: minimize}
workload: {name: valley2d}
methods: [sgd]
parameters:
  lr: {values: [0.1]}
  momentum: {values: [0.0, 0.9]}
  nesterov: {values: [true, false], when: {momentum: [0.9]}}
sampler: {name: grid}
budget: {trial_grad_evals: 100}
""")
    points = grid_points(load_spec(path))
    assert len(points) == 3
    assert {"method": "sgd", "lr": 0.1, "momentum": 0.0} in points


def test_fixed_values_are_returned() -> None:
    for config in _sample(SPACES / "smoke.yaml", 10):
        assert config["momentum"] == 0.0


def test_grid_param_name_is_stable() -> None:
    assert GRID_PARAM == "grid_point"


@pytest.mark.parametrize("name", ["all_methods.yaml", "bar.yaml", "smoke.yaml"])
def test_the_sampler_draws_from_the_distributions_the_warm_start_checks(name: str) -> None:
    """One translation (`Param.distribution`): what Optuna records per name is what `spec_distributions`
    (the warm start's check) and the stored space (the importances) say, log and step included."""
    spec = load_spec(SPACES / name)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    define = build_define(spec)
    for _ in range(60):
        trial = study.ask()
        define(trial)
        study.tell(trial, 0.0)
    ours = spec_distributions(spec)
    recorded = {n: d for t in study.trials for n, d in t.distributions.items()}
    assert recorded and all(ours[n] == d for n, d in recorded.items())
    for method, own in spec.space.items():
        for param, p in own.items():
            if p.type != "fixed":
                assert ours[optuna_name(method, param)] == Param.from_dict(param, p.to_dict()).distribution()
