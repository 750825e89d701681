"""The trials a study starts with, in Optuna's terms: queued configs and a warm start from an earlier study.

- `enqueued_params`: the spec's `enqueue` configs under the names Optuna stores (`sam/rho`), for
  `study.enqueue_trial(..., skip_if_exists=True)` (a resumed study does not queue them twice).
- `warm_trials`: an earlier experiment's COMPLETE trials, re-created for `study.add_trial`, after
  checking that every distribution they were sampled from is exactly this spec's (else a UserError,
  exit 2, before anything starts) and that the objectives agree.
Constraints are not here: the searcher sets each violation (`tuner.results.feasible`, the report's
rule too) with Optuna 5's `Trial.set_constraint` before telling the trial (`constraints_func` is
deprecated in Optuna 5), and TPE, NSGA-II and GP rank infeasible trials below feasible ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import FrozenTrial, TrialState

from tuner.errors import UserError
from tuner.layout import JOURNAL_FILE
from tuner.run.optuna_space import optuna_name
from tuner.space import Param
from tuner.spec import Spec

WARM_ATTR = "sharptune_warm_start_from"


def enqueued_params(spec: Spec) -> list[dict[str, Any]]:
    """Each `enqueue` config as Optuna parameters: `method` plus `<method>/<name>` (or a shared option name)."""
    out = []
    for config in spec.enqueue:
        method = config["method"]
        params: dict[str, Any] = {"method": method}
        for name, value in config.items():
            if name != "method":
                params[optuna_name(method, name)] = value
        out.append(params)
    return out


def _distribution(p: Param) -> BaseDistribution | None:
    if p.type == "float":
        return FloatDistribution(p.low, p.high, log=p.log, step=p.step)
    if p.type == "int":
        return IntDistribution(int(p.low), int(p.high), log=p.log, step=int(p.step or 1))
    if p.type == "categorical":
        return CategoricalDistribution(list(p.values))
    return None  # fixed: not sampled


def spec_distributions(spec: Spec) -> dict[str, BaseDistribution]:
    """Every distribution this spec's define-by-run space can sample, by Optuna name."""
    out: dict[str, BaseDistribution] = {"method": CategoricalDistribution(list(spec.methods))}
    for method, own in spec.space.items():
        for name, p in own.items():
            dist = _distribution(p)
            if dist is not None:
                out[optuna_name(method, name)] = dist
    return out


def _directions(spec: Spec) -> list[optuna.study.StudyDirection]:
    goals = [o.goal for o in spec.objectives] if spec.objectives else [spec.metric.goal]
    return [optuna.study.StudyDirection.MAXIMIZE if g == "maximize" else optuna.study.StudyDirection.MINIMIZE
            for g in goals]


def warm_trials(spec: Spec) -> list[FrozenTrial]:
    """The warm start's finished trials, ready for `add_trial`; UserError where the spaces differ."""
    if not spec.warm_start:
        return []
    source = spec.warm_start
    journal = Path(spec.storage_path) / source / JOURNAL_FILE
    where = f"{spec.path}: warm_start.from: {source!r}"
    try:
        old = optuna.load_study(study_name=source, storage=optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(str(journal))))
    except (KeyError, ValueError, OSError) as exc:
        raise UserError(f"{where}: cannot read its study in {journal}: {exc}") from None
    if list(old.directions) != _directions(spec):
        raise UserError(f"{where}: its objectives go {[d.name.lower() for d in old.directions]}, "
                        f"this spec's {[d.name.lower() for d in _directions(spec)]}; warm start needs the same")
    ours = spec_distributions(spec)
    out = []
    for trial in old.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        for name, dist in trial.distributions.items():
            if ours.get(name) != dist:
                now = ours.get(name, "nothing (not in this spec's space)")
                raise UserError(f"{where}: its trial {trial.number} sampled {name} from {dist}, this spec samples "
                                f"{now}; warm start needs the same space")
        out.append(optuna.trial.create_trial(
            params=trial.params, distributions=trial.distributions, values=trial.values,
            user_attrs={**trial.user_attrs, WARM_ATTR: source}, system_attrs=dict(trial.system_attrs),
            intermediate_values=dict(trial.intermediate_values), state=TrialState.COMPLETE))
    return out
