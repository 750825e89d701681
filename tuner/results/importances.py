"""Hyperparameter importances of a method's search trials (Optuna on an in-memory study); the report shows them."""

from __future__ import annotations

from typing import Any

import numpy as np
import optuna
import pandas as pd


def param_importances(trials: pd.DataFrame, metric: str, goal: str, method: str) -> tuple[dict[str, float], str]:
    """Optuna's importances on an in-memory study rebuilt from the method's search trials.

    Returns (importances, note); importances is empty when they cannot be computed, and note says why.
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    search = trials[(trials["phase"] == "search") & (trials["method"] == method) & (trials["status"] != "diverged")]
    if metric in search:
        search = search[np.isfinite(search[metric].astype(float))]
    else:
        search = search.iloc[0:0]
    varied = searched_params(search)
    if len(search) < 3 or not varied:
        return {}, f"needs at least 3 finished search trials and a searched hyperparameter (has {len(search)})"
    dists = {name: _distribution([h.get(name) for h in search["hparams"]]) for name in varied}
    study = optuna.create_study(direction=goal)
    for hparams, value in zip(search["hparams"], search[metric].astype(float), strict=True):
        params = {k: _plain(hparams[k]) if isinstance(dists[k], optuna.distributions.CategoricalDistribution)
                  else hparams[k] for k in varied if k in hparams}
        study.add_trial(optuna.trial.create_trial(params=params, distributions={k: dists[k] for k in params},
                                                  value=value))
    try:
        imp = optuna.importance.get_param_importances(study)
    except (RuntimeError, ValueError) as exc:
        return {}, f"optuna could not compute importances: {exc}"
    return {k: float(v) for k, v in imp.items()}, f"optuna.importance (default evaluator), {len(search)} trials"


def searched_params(trials: pd.DataFrame) -> list[str]:
    """Hyperparameters that took more than one value across these trials."""
    values: dict[str, set[str]] = {}
    for hparams in trials["hparams"]:
        for k, v in hparams.items():
            values.setdefault(k, set()).add(repr(v))
    return sorted(k for k, v in values.items() if len(v) > 1)


def _distribution(values: list[Any]) -> Any:
    numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if len(numbers) == len(values) and len(set(numbers)) > 1:
        low, high = min(numbers), max(numbers)
        if all(isinstance(v, int) for v in numbers):
            return optuna.distributions.IntDistribution(int(low), int(high), log=low > 0 and high / low > 20)
        return optuna.distributions.FloatDistribution(float(low), float(high), log=low > 0 and high / low > 20)
    choices = sorted({_plain(v) for v in values}, key=repr)
    return optuna.distributions.CategoricalDistribution(choices)


def _plain(value: Any) -> Any:
    """Optuna's categorical choices must be None, bool, int, float or str."""
    return value if value is None or isinstance(value, (bool, int, float, str)) else repr(value)
