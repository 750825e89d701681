"""A validated spec as an Optuna define-by-run space: first the method, then only that method's parameters.

Names Optuna sees: `method`; `<method>/<name>` for a method's hyperparameters, so each method keeps its
own distribution under its own name (sgd's lr range is not adamw's, and a sampler must never see one
name change distribution); plain `<name>` for workload options, which every method shares. The config a
trial gets back uses plain names: `{"method": "sam", "lr": 0.03, "rho": 0.1, "snr": 2.0}`.

The grid sampler cannot walk a conditional space (Optuna's GridSampler takes one product of all names),
so for `sampler: grid` the space is one categorical `grid_point` over the explicit list from
`grid_points(spec)`: the union over methods of each method's own product of values.

With `budget.split: per_method` each method has its own study (`tuner.run.split`): `method=` gives
that method's space alone (no `method` categorical; for a grid, that method's own points).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from tuner.hparams import is_hyperparameter
from tuner.space import Param, grid_configs, is_active
from tuner.spec import Spec

GRID_PARAM = "grid_point"


def optuna_name(method: str, name: str) -> str:
    """The name Optuna stores: per method for hyperparameters, shared for workload options."""
    return f"{method}/{name}" if is_hyperparameter(method, name) else name


def suggest(trial: optuna.Trial, name: str, p: Param) -> Any:
    """Draw `p` from its one Optuna distribution (`Param.distribution`), or give its fixed value."""
    dist = p.distribution()
    if isinstance(dist, FloatDistribution):
        return trial.suggest_float(name, dist.low, dist.high, step=dist.step, log=dist.log)
    if isinstance(dist, IntDistribution):
        return trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)
    if isinstance(dist, CategoricalDistribution):
        return trial.suggest_categorical(name, list(dist.choices))
    return p.value


def sample_method(trial: optuna.Trial, spec: Spec, method: str) -> dict[str, Any]:
    """One method's parameters for this trial (conditionals applied), as `{"method": m, **plain names}`."""
    own = spec.space[method]
    chosen: dict[str, Any] = {}
    for name, p in own.items():
        if is_active(p, method, chosen, own, spec.defaults[method]):
            chosen[name] = suggest(trial, optuna_name(method, name), p)
    return {"method": method, **chosen}


def build_define(spec: Spec, method: str | None = None) -> Callable[[optuna.Trial], dict[str, Any]]:
    """The define-by-run function for Ray's OptunaSearch (or `study.ask()`): trial -> config.

    `method`: that method's study alone (split per method); None: one study over `method` too."""
    if spec.sampler.name == "grid":
        points = grid_points(spec, method)

        def define_grid(trial: optuna.Trial) -> dict[str, Any]:
            return dict(points[trial.suggest_categorical(GRID_PARAM, list(range(len(points))))])
        return define_grid

    if method is not None:
        def define_one(trial: optuna.Trial) -> dict[str, Any]:
            return sample_method(trial, spec, method)
        return define_one

    methods = list(spec.methods)

    def define(trial: optuna.Trial) -> dict[str, Any]:
        return sample_method(trial, spec, trial.suggest_categorical("method", methods))
    return define


def grid_points(spec: Spec, method: str | None = None) -> list[dict[str, Any]]:
    """Every config of a grid spec, method by method; each is a product of that method's values only.
    `method`: that method's points alone."""
    return grid_configs((method,) if method else spec.methods, spec.space, spec.defaults)


def grid_search_space(spec: Spec, method: str | None = None) -> dict[str, list[int]]:
    """What to give `optuna.samplers.GridSampler` for a grid spec (indices into `grid_points`)."""
    return {GRID_PARAM: list(range(len(grid_points(spec, method))))}
