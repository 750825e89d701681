"""Hyperparameter importances of a method's search trials (Optuna on an in-memory study); the report shows them.

Only completed trials count: a pruned trial's value is from early in training, and mixing it with full runs
makes a parameter that decides *when* a trial is pruned look important. Below `MIN_COMPLETED_FOR_IMPORTANCE`
completed trials they are refused: Optuna's default evaluator (fANOVA on a random forest) then fits a few
points with as many trees, and one more trial can reorder the ranking. The distributions are the stored
search space's (log where the spec searched on a log scale), not guessed from the sampled values.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import optuna
import pandas as pd

from tuner.trial.protocol import COMPLETED

MIN_COMPLETED_FOR_IMPORTANCE = 10

def param_importances(trials: pd.DataFrame, metric: str, goal: str, method: str,
                      space: Mapping[str, Any] | None = None) -> tuple[dict[str, float], str]:
    """Optuna's importances on an in-memory study rebuilt from the method's completed search trials.

    `space` is the method's stored search space (`{name: {type, low, high, log, values}}`); without it a
    range is taken as linear. Returns (importances, note); importances is empty when they are refused or
    cannot be computed, and note says why.
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    search = trials[(trials["phase"] == "search") & (trials["method"] == method)]
    if metric in search:
        search = search[np.isfinite(search[metric].astype(float))]
    else:
        search = search.iloc[0:0]
    completed = search[search["status"] == COMPLETED]
    varied = searched_params(completed)
    if len(completed) < MIN_COMPLETED_FOR_IMPORTANCE:
        return {}, (f"not computed: {len(completed)} completed search trials ({len(search) - len(completed)} "
                    f"pruned or diverged ones do not count), fewer than the {MIN_COMPLETED_FOR_IMPORTANCE} "
                    "that importances need to be more than noise")
    if not varied:
        return {}, "not computed: no hyperparameter took more than one value in the completed trials"
    search = completed
    dists = {name: _distribution([h.get(name) for h in search["hparams"]], (space or {}).get(name))
             for name in varied}
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
    return {k: float(v) for k, v in imp.items()}, (f"optuna.importance (default evaluator) over {len(search)} "
                                                   "completed search trials")


def searched_params(trials: pd.DataFrame) -> list[str]:
    """Hyperparameters that took more than one value across these trials."""
    values: dict[str, set[str]] = {}
    for hparams in trials["hparams"]:
        for k, v in hparams.items():
            values.setdefault(k, set()).add(repr(v))
    return sorted(k for k, v in values.items() if len(v) > 1)


def _distribution(values: list[Any], stored: Mapping[str, Any] | None = None) -> Any:
    """The stored range (widened to hold every value, e.g. an enqueued default outside it), its log flag
    from the space; a categorical of the values otherwise."""
    numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if len(numbers) == len(values) and len(set(numbers)) > 1:
        bounds = [stored.get("low"), stored.get("high")] if isinstance(stored, Mapping) else []
        low = min([*numbers, *(b for b in bounds if isinstance(b, (int, float)))])
        high = max([*numbers, *(b for b in bounds if isinstance(b, (int, float)))])
        log = bool(isinstance(stored, Mapping) and stored.get("log")) and low > 0
        if all(isinstance(v, int) for v in numbers):
            return optuna.distributions.IntDistribution(int(low), int(high), log=log)
        return optuna.distributions.FloatDistribution(float(low), float(high), log=log)
    choices = sorted({_plain(v) for v in values}, key=repr)
    return optuna.distributions.CategoricalDistribution(choices)


def _plain(value: Any) -> Any:
    """Optuna's categorical choices must be None, bool, int, float or str."""
    return value if value is None or isinstance(value, (bool, int, float, str)) else repr(value)
