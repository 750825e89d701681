"""A study's initial trials without a Ray cluster: queued configs come first (once), a warm start seeds a new
study with an earlier one's finished trials or refuses a different space, constraints reach the sampler."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from e2e import smoke_spec
from optuna.trial import TrialState

from tuner.errors import UserError
from tuner.layout import JOURNAL_FILE
from tuner.results.feasible import constraint_values
from tuner.run.initial_trials import warm_trials
from tuner.run.searcher import SharpSearch
from tuner.spec import SpecError, load_spec

DONE = {"sharptune/complete": 1.0, "cost/grad_evals": 200.0, "step": 200.0, "cost/peak_mem_mb": 900.0}


def _spec(tmp_path: Path, **changes: object):
    return load_spec(smoke_spec(tmp_path, **changes))


def _journal(spec) -> Path:
    return Path(spec.experiment_dir) / JOURNAL_FILE


def test_enqueued_configs_come_first_and_once(tmp_path: Path) -> None:
    queued = [{"method": "sam", "lr": 0.1, "rho": 0.05}, {"method": "sgd", "lr": 0.2}]
    spec = _spec(tmp_path, enqueue=queued)
    search = SharpSearch(spec, _journal(spec))
    assert [search.suggest("a"), search.suggest("b")] == [{**c, "momentum": 0.0} for c in queued]  # fixed
    assert search._ot_study.get_trials(states=(TrialState.WAITING,)) == []
    again = SharpSearch(spec, _journal(spec))  # a resume before Ray saved: nothing queued twice
    assert len(again._ot_study.get_trials(states=(TrialState.WAITING,))) == 0
    paper = _spec(tmp_path, name="paper", enqueue="paper_defaults")
    assert paper.enqueue == ({"method": "sgd", "lr": 0.01}, {"method": "sam", "lr": 0.01, "rho": 0.05})


@pytest.mark.parametrize("enqueue, field", [
    ([{"method": "asam", "lr": 0.1}], "enqueue.0.method"),
    ([{"method": "sam", "rhoo": 0.1}], "enqueue.0.rhoo"),
    ([{"method": "sam", "rho": 5.0}], "enqueue.0.rho"),
    ([{"lr": 0.1}], "enqueue.0"),
    ("defaults", "enqueue"),
])
def test_bad_enqueue_entries_name_the_key(tmp_path: Path, enqueue: object, field: str) -> None:
    with pytest.raises(SpecError) as info:
        _spec(tmp_path, enqueue=enqueue)
    assert info.value.field == field


def test_warm_start_adds_the_finished_trials_of_the_same_space_and_refuses_another(tmp_path: Path) -> None:
    first = _spec(tmp_path, name="first")
    search = SharpSearch(first, _journal(first))
    for i, tid in enumerate(("a", "b", "c")):
        search.suggest(tid)
        if tid != "c":
            search.on_trial_complete(tid, {**DONE, "eval/accuracy": 0.5 + i / 10, "eval/loss": 1.0 - i / 10})
    second = _spec(tmp_path, name="second", warm_start={"from": "first"})
    seeded = SharpSearch(second, _journal(second))._ot_study
    finished = seeded.get_trials(states=(TrialState.COMPLETE,))
    old = optuna.load_study(study_name="first", storage=search._storage).get_trials(states=(TrialState.COMPLETE,))
    assert [t.params for t in finished] == [t.params for t in old] and len(finished) == 2
    assert all(t.user_attrs["sharptune_warm_start_from"] == "first" for t in finished)
    other = _spec(tmp_path, name="third", warm_start={"from": "first"},
                  parameters={"lr": {"type": "float", "low": 0.01, "high": 0.5, "log": True},
                              "rho": {"type": "float", "low": 0.02, "high": 0.3, "when": {"method": ["sam"]}},
                              "momentum": {"value": 0.0}})
    with pytest.raises(UserError, match=r"warm_start.from: 'first': its trial \d sampled sam/rho .*same space"):
        warm_trials(other)
    with pytest.raises(SpecError, match="warm_start.from: no finished experiment 'nope'"):
        _spec(tmp_path, name="fourth", warm_start={"from": "nope"})


def test_constraints_reach_the_sampler_and_mark_infeasible_trials(tmp_path: Path) -> None:
    limits = [{"metric": "cost/peak_mem_mb", "max": 1000}, {"metric": "overhead", "max": 1.5}]
    spec = _spec(tmp_path, constraints=limits, sampler={"name": "tpe", "seed": 0})
    search = SharpSearch(spec, _journal(spec))
    search.suggest("light")
    search.suggest("heavy")
    search.on_trial_complete("light", {**DONE, "eval/loss": 0.6})
    search.on_trial_complete("heavy", {**DONE, "eval/loss": 0.1, "cost/peak_mem_mb": 3000.0,
                                       "cost/grad_evals": 200.0, "step": 50.0})
    light, heavy = search._ot_study.trials
    assert light.constraints == {"cost/peak_mem_mb": -100.0, "overhead": -0.5}
    assert heavy.constraints == {"cost/peak_mem_mb": 2000.0, "overhead": 2.5}  # what TPE reads
    assert search._ot_study.best_trial.number == light.number  # the infeasible one is not best despite its loss
    assert constraint_values(spec.constraints, {}) == [float("inf")] * 2
    with pytest.raises(SpecError, match="constraints: sampler 'random' cannot take constraints"):
        _spec(tmp_path, constraints=limits, sampler={"name": "random"})
    with pytest.raises(SpecError, match=r"constraints.0.metric: unknown metric 'peak'"):
        _spec(tmp_path, constraints=[{"metric": "peak", "max": 1}], sampler={"name": "tpe", "seed": 0})
