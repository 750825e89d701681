"""The trials a study starts with, in Optuna's terms: queued configs and a warm start from an earlier study.

- `enqueued_params`: the spec's `enqueue` configs under the names Optuna stores (`sam/rho`), for
  `study.enqueue_trial(..., skip_if_exists=True)` (a resumed study does not queue them twice).
- `warm_trials`: an earlier experiment's COMPLETE trials, re-created for `study.add_trial`, after
  checking that every distribution they were sampled from is exactly this spec's (else a UserError,
  exit 2, before anything starts) and that the objectives agree.
With `budget.split: per_method` each method's study takes only its own queued configs and warm trials,
without the `method` parameter (`method=`); a warm start reads the earlier experiment's studies whether
it was split per method (`<name>/<method>`) or shared (`<name>`, its `method` parameter sorts them).
Constraints are not here: the searcher sets each violation (`tuner.results.feasible`, the report's
rule too) with Optuna 5's `Trial.set_constraint` before telling the trial (`constraints_func` is
deprecated in Optuna 5), and TPE, NSGA-II and GP rank infeasible trials below feasible ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.trial import FrozenTrial, TrialState

from tuner.errors import UserError
from tuner.layout import JOURNAL_FILE
from tuner.run.optuna_space import optuna_name
from tuner.spec import Spec

WARM_ATTR = "sharptune_warm_start_from"


def study_name(name: str, method: str | None) -> str:
    """The Optuna study of one method (`<name>/<method>`, split per method), or the shared one (`<name>`)."""
    return f"{name}/{method}" if method else name


def enqueued_params(spec: Spec, method: str | None = None) -> list[dict[str, Any]]:
    """Each `enqueue` config as Optuna parameters: `method` plus `<method>/<name>` (or a shared option name).

    `method`: only that method's configs, for its own study (which has no `method` parameter)."""
    out = []
    for config in spec.enqueue:
        if method is not None and config["method"] != method:
            continue
        params: dict[str, Any] = {} if method else {"method": config["method"]}
        for name, value in config.items():
            if name != "method":
                params[optuna_name(config["method"], name)] = value
        out.append(params)
    return out


def spec_distributions(spec: Spec, method: str | None = None) -> dict[str, BaseDistribution]:
    """Every distribution this spec's define-by-run space can sample, by Optuna name (`method`: its study's)."""
    out: dict[str, BaseDistribution] = {} if method else {"method": CategoricalDistribution(list(spec.methods))}
    for m, own in spec.space.items():
        if method is not None and m != method:
            continue
        for name, p in own.items():
            dist = p.distribution()
            if dist is not None:
                out[optuna_name(m, name)] = dist
    return out


def _directions(spec: Spec) -> list[optuna.study.StudyDirection]:
    goals = [o.goal for o in spec.objectives] if spec.objectives else [spec.metric.goal]
    return [optuna.study.StudyDirection.MAXIMIZE if g == "maximize" else optuna.study.StudyDirection.MINIMIZE
            for g in goals]


def _source_trials(spec: Spec, method: str | None) -> tuple[list[optuna.Study], list[tuple[FrozenTrial, dict, dict]]]:
    """The warm start's studies and its COMPLETE trials as (trial, params, distributions) in this study's terms."""
    source = spec.warm_start or ""
    journal = Path(spec.storage_path) / source / JOURNAL_FILE
    where = f"{spec.path}: warm_start.from: {source!r}"
    try:
        storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal)))
        names = [n for n in optuna.get_all_study_names(storage) if n == source or n.startswith(f"{source}/")]
        if not names:
            raise KeyError(f"no study named {source!r} or {source}/<method>")
        studies = [optuna.load_study(study_name=n, storage=storage) for n in names]
    except (KeyError, ValueError, OSError) as exc:
        raise UserError(f"{where}: cannot read its study in {journal}: {exc}") from None
    out = []
    for study in studies:
        own = study.study_name.removeprefix(f"{source}/") if study.study_name != source else None
        for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            m = own or trial.params.get("method")
            if method is not None and m != method:
                continue
            params, dists = dict(trial.params), dict(trial.distributions)
            if method is not None:  # this study samples one method: no `method` parameter
                params.pop("method", None)
                dists.pop("method", None)
            elif own is not None:  # a per-method trial into a shared study: its method as the parameter
                params["method"], dists["method"] = own, CategoricalDistribution(list(spec.methods))
            out.append((trial, params, dists))
    return studies, out


def warm_trials(spec: Spec, method: str | None = None) -> list[FrozenTrial]:
    """The warm start's finished trials, ready for `add_trial`; UserError where the spaces differ.

    `method`: only that method's trials, for its own study."""
    if not spec.warm_start:
        return []
    source = spec.warm_start
    where = f"{spec.path}: warm_start.from: {source!r}"
    studies, found = _source_trials(spec, method)
    for old in studies:
        if list(old.directions) != _directions(spec):
            raise UserError(f"{where}: its objectives go {[d.name.lower() for d in old.directions]}, "
                            f"this spec's {[d.name.lower() for d in _directions(spec)]}; warm start needs the same")
    ours = spec_distributions(spec, method)
    out = []
    for trial, params, dists in found:
        for name, dist in dists.items():
            if ours.get(name) != dist:
                now = ours.get(name, "nothing (not in this spec's space)")
                raise UserError(f"{where}: its trial {trial.number} sampled {name} from {dist}, this spec samples "
                                f"{now}; warm start needs the same space")
        out.append(optuna.trial.create_trial(
            params=params, distributions=dists, values=trial.values,
            user_attrs={**trial.user_attrs, WARM_ATTR: source}, system_attrs=dict(trial.system_attrs),
            intermediate_values=dict(trial.intermediate_values), state=TrialState.COMPLETE))
    return out
