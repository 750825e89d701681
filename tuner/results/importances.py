"""Hyperparameter importances of a method's search trials (Optuna on an in-memory study); the report shows them.

Only completed trials count: a pruned trial's value is from early in training, and mixing it with full runs
makes a parameter that decides *when* a trial is pruned look important. Below `MIN_COMPLETED_FOR_IMPORTANCE`
completed trials they are refused: Optuna's default evaluator (fANOVA on a random forest) then fits a few
points with as many trees, and one more trial can reorder the ranking. Each parameter's distribution is
the one the sampler drew it from: `Param.distribution()` of the space stored with the experiment (log, step,
int or categorical as declared), never guessed from the sampled values; a parameter the stored space does
not search is left out, and the note names it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import optuna
import pandas as pd
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from tuner.names import COMPLETED
from tuner.space import Param
from tuner.value_rules import is_number, same_value

MIN_COMPLETED_FOR_IMPORTANCE = 10


def param_importances(trials: pd.DataFrame, metric: str, goal: str, method: str,
                      space: Mapping[str, Any] | None = None) -> tuple[dict[str, float], str]:
    """Optuna's importances on an in-memory study rebuilt from the method's completed search trials.

    `space` is the method's stored search space (`{name: {type, low, high, log, step, values}}`, what
    `Param.to_dict` writes); a parameter it does not search is left out. Returns (importances, note);
    importances is empty when they are refused or cannot be computed, and note says why.
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
    dists = {name: _stored(space, name) for name in varied}
    unknown = sorted(k for k, d in dists.items() if d is None)
    dists = {k: d for k, d in dists.items() if d is not None}
    left_out = f"; left out, no stored search distribution: {', '.join(unknown)}" if unknown else ""
    if not dists:
        return {}, f"not computed: the experiment stored no search distribution for {', '.join(unknown)}"
    rows = []
    for hparams, value in zip(completed["hparams"], completed[metric].astype(float), strict=True):
        params = {k: _plain(hparams[k]) for k in dists if k in hparams}
        grown = {k: _holding(dists[k], v) for k, v in params.items()}
        if all(d is not None for d in grown.values()):  # else a value no range on that scale holds: left out
            dists.update(grown)
            rows.append((params, value))
    study = optuna.create_study(direction=goal)
    for params, value in rows:
        study.add_trial(optuna.trial.create_trial(params=params, distributions={k: dists[k] for k in params},
                                                  value=value))
    try:
        imp = optuna.importance.get_param_importances(study)
    except (RuntimeError, ValueError) as exc:
        return {}, f"optuna could not compute importances: {exc}"
    return {k: float(v) for k, v in imp.items()}, (f"optuna.importance (default evaluator) over {len(rows)} "
                                                   f"completed search trials{left_out}")


def searched_params(trials: pd.DataFrame) -> list[str]:
    """Hyperparameters that took more than one value across these trials."""
    values: dict[str, set[str]] = {}
    for hparams in trials["hparams"]:
        for k, v in hparams.items():
            values.setdefault(k, set()).add(repr(v))
    return sorted(k for k, v in values.items() if len(v) > 1)


def _stored(space: Mapping[str, Any] | None, name: str) -> BaseDistribution | None:
    """The distribution the sampler drew `name` from, per the stored space; None where it searched none."""
    stored = (space or {}).get(name)
    if not isinstance(stored, Mapping):
        return None
    try:
        dist = Param.from_dict(name, stored).distribution()
    except (KeyError, TypeError, ValueError):
        return None
    if isinstance(dist, CategoricalDistribution):
        return CategoricalDistribution([_plain(c) for c in dist.choices])
    return dist


def _holding(dist: BaseDistribution, value: Any) -> BaseDistribution | None:
    """`dist` grown to hold `value` (an enqueued default outside the searched range or choices) on the same
    scale: a categorical gains the choice, a range widens (dropping its step where the value is off its grid);
    None where no range on that scale holds it (not a number, not an int, at or below 0 on a log scale)."""
    if isinstance(dist, CategoricalDistribution):
        held = any(same_value(value, c) for c in dist.choices)
        return dist if held else CategoricalDistribution([*dist.choices, value])
    if not is_number(value) or (isinstance(dist, IntDistribution) and not float(value).is_integer()):
        return None
    step = dist.step
    on_grid = step is None or abs((value - dist.low) / step - round((value - dist.low) / step)) < 1e-8
    if dist.low <= value <= dist.high and on_grid:
        return dist
    low, high = min(dist.low, value), max(dist.high, value)
    if dist.log and low <= 0:
        return None
    if isinstance(dist, IntDistribution):
        return IntDistribution(int(low), int(high), log=dist.log, step=step if on_grid else 1)
    return FloatDistribution(low, high, log=dist.log, step=step if on_grid else None)


def _plain(value: Any) -> Any:
    """Optuna's categorical choices must be None, bool, int, float or str."""
    return value if value is None or isinstance(value, (bool, int, float, str)) else repr(value)
