"""The one path from a trial's values to the optimizer's hyperparameters, horizon included.

A trial's values (`{"method": "obar", "lr": 3e-4, "schedule": "cosine", "k_shot": 64}`) hold the
method, the hyperparameters it samples or fixes, and workload options. `split_values` separates them;
`optimizer_hparams` fills in what the trial does not set (the method's defaults) and the schedule's
horizon, which the spec cannot know: a budget counts gradient evaluations, a schedule counts steps,
and a 2-pass method takes half the steps of a 1-pass one (DESIGN.md section 5).

Every consumer takes this path: the spec check, the preflight, the Ray trainable, the confirmation
phase, the results table (`tuner.tracking.reader`) and the export. A check that resolves
hyperparameters any other way proves nothing about the trial it checks.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from methods import HPARAMS, ConfigError, get_method

HORIZON = "total_steps"


def hyperparameter_names(method: Any) -> frozenset[str]:
    """The names `build_optimizer` takes for `method`; every known name for a method this version lacks
    (results written by an older version still split: its runs logged only names the method took)."""
    try:
        return get_method(method).hyperparameters
    except ConfigError:
        return frozenset(HPARAMS)


def is_hyperparameter(method: Any, name: str) -> bool:
    """The split itself: is `name` a hyperparameter of `method` (else, beside `method`, a workload option)?
    The spec, the Optuna space, the trial and the results all ask this function."""
    return name in hyperparameter_names(method)


def method_hparams(method: Any, values: Mapping[str, Any]) -> dict[str, Any]:
    """The values that are `method`'s hyperparameters."""
    return {k: v for k, v in values.items() if is_hyperparameter(method, k)}


def split_values(values: Mapping[str, Any]) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """A trial's public values -> (method, optimizer hyperparameters, workload option overrides)."""
    method = values["method"]
    hparams = method_hparams(method, values)
    overrides = {k: v for k, v in values.items() if k != "method" and k not in hparams}
    return method, hparams, overrides


def horizon_steps(method: str, hparams: Mapping[str, Any], trial_grad_evals: int) -> int:
    """Optimizer steps a trial of `trial_grad_evals` gradient evaluations takes with these settings."""
    per_step = get_method(method).grad_evals_per_step(**{k: v for k, v in hparams.items() if k != HORIZON})
    return max(1, math.ceil(trial_grad_evals / per_step))


def optimizer_hparams(method: str, hparams: Mapping[str, Any], trial_grad_evals: int | None) -> dict[str, Any]:
    """Everything `build_optimizer(model, method, **out)` takes, defaults and horizon filled, validated.

    A horizon the values set themselves is kept; otherwise a method that has one gets the trial's
    length in steps (none when the budget is unknown). Raises `methods.ConfigError` (naming the field)
    for a combination that cannot work.
    """
    info = get_method(method)
    filled = dict(hparams)
    if is_hyperparameter(method, HORIZON) and filled.get(HORIZON) is None and trial_grad_evals is not None:
        filled[HORIZON] = horizon_steps(method, filled, trial_grad_evals)
    return info.resolve(filled)


def trial_hparams(values: Mapping[str, Any], trial_grad_evals: int) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """(method, resolved optimizer hyperparameters, workload overrides) of one trial's public values."""
    method, hparams, overrides = split_values(values)
    return method, optimizer_hparams(method, hparams, trial_grad_evals), overrides
