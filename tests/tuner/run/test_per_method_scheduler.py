"""ASHA within a method: a method that is behind at every early rung and wins at the end (a SAM-like
curve) still gets a trial through its whole budget when each method has its own ASHA; one ASHA across
methods stops all of its trials. A synthetic trainable on a real Ray, so the real ASHA decides."""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path

import pytest
import ray
from ray import tune
from ray.tune.experiment import Trial
from ray.tune.schedulers import ASHAScheduler, MedianStoppingRule

from tuner.run.per_method_scheduler import PerMethodScheduler

MAX_T = 8


def late_winner(config: dict) -> None:
    """sgd: 0.5 at once, 0.4 at the end; sam: 1.0 until the last report, then 0.1 (it wins at full budget)."""
    for t in range(1, MAX_T + 1):
        if config["method"] == "sgd":
            loss = 0.5 if t < MAX_T else 0.4
        else:
            loss = 1.0 if t < MAX_T else 0.1
        tune.report({"loss": loss + 0.001 * config["i"], "t": t})


def asha() -> ASHAScheduler:
    return ASHAScheduler(time_attr="t", metric="loss", mode="min", max_t=MAX_T, grace_period=1, reduction_factor=2)


@pytest.fixture(scope="module")
def local_ray():
    here = str(Path(__file__).parent)  # the workers import `late_winner` from this module
    path = os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH", "")) if p)
    ray.init(num_cpus=1, include_dashboard=False, logging_level="ERROR", configure_logging=False,
             runtime_env={"env_vars": {"PYTHONPATH": path}})
    yield
    ray.shutdown()


def _full_budget_methods(scheduler, tmp_path) -> dict[str, int]:
    # the three sgd trials run first (one at a time), then the three sam trials
    space = {"i": tune.grid_search(list(range(6))),
             "method": tune.sample_from(lambda spec: "sgd" if spec.config.i < 3 else "sam")}
    results = tune.Tuner(late_winner, param_space=space,
                         tune_config=tune.TuneConfig(scheduler=scheduler, max_concurrent_trials=1),
                         run_config=tune.RunConfig(storage_path=str(tmp_path), verbose=0)).fit()
    full: dict[str, int] = {"sgd": 0, "sam": 0}
    for r in results:
        full[r.config["method"]] += int(r.metrics["t"] == MAX_T)
    return full


def test_a_late_winner_reaches_full_budget_only_when_raced_against_itself(local_ray, tmp_path) -> None:
    shared = _full_budget_methods(asha(), tmp_path / "shared")
    assert shared["sam"] == 0  # the old protocol: one ASHA across methods stops every sam trial
    per_method = _full_budget_methods(PerMethodScheduler(partial(asha)), tmp_path / "split")
    assert per_method["sam"] >= 1 and per_method["sgd"] >= 1


class _Controller:
    """What a scheduler asks of Ray's controller: the trials, and the live ones."""

    def __init__(self, trials: list[Trial]) -> None:
        self.trials = trials

    def get_trials(self) -> list[Trial]:
        return self.trials

    def get_live_trials(self) -> set[Trial]:
        return {t for t in self.trials if t.status == Trial.RUNNING}


def test_the_median_rule_compares_a_trial_with_its_own_method_only() -> None:
    """The median rule reads the other live trials: through the per-method view, only its method's."""
    def median() -> MedianStoppingRule:
        return MedianStoppingRule(time_attr="t", metric="loss", mode="min", grace_period=1, min_samples_required=2)

    decisions = {}
    for name, scheduler in (("shared", median()), ("per_method", PerMethodScheduler(median))):
        trials = [Trial("f", config={"method": m, "i": i}, stub=True) for i, m in enumerate(["sgd"] * 3 + ["sam"])]
        controller = _Controller(trials)
        for t in trials:
            t.status = Trial.RUNNING
            scheduler.on_trial_add(controller, t)
        for step in range(1, 6):
            for t in trials[:3]:  # sgd: 0.5 from the start
                scheduler.on_trial_result(controller, t, {"loss": 0.5, "t": step, "time_total_s": step})
        decisions[name] = scheduler.on_trial_result(controller, trials[3], {"loss": 1.0, "t": 5, "time_total_s": 5})
    assert decisions == {"shared": "STOP", "per_method": "CONTINUE"}  # sam, behind early, is not judged by sgd
