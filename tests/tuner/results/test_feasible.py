"""Which trials meet the spec's `constraints` (tuner.results.feasible): one rule, worked by hand here."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from tuner.names import GRAD_EVALS, PEAK_MEM_MB
from tuner.results.feasible import constraint_values, constraints_from, derived_metric, mark_feasible
from tuner.spec import Constraint

MEM = Constraint(PEAK_MEM_MB, max=100.0)
OVERHEAD = Constraint("overhead", max=1.5)


def test_overhead_is_counted_where_step_is_logged_else_the_methods_declared_cost() -> None:
    assert derived_metric("overhead", {GRAD_EVALS: 90, "step": 30}) == 3.0
    assert derived_metric("overhead", {}, "sam", {"lr": 0.1, "rho": 0.05}) == 2
    assert derived_metric("overhead", {}, "sgd", {"lr": 0.1}) == 1
    assert derived_metric("overhead", {}) is None  # neither counted nor a method to ask
    assert derived_metric(PEAK_MEM_MB, {PEAK_MEM_MB: 42.0}) == 42.0


def test_violations_follow_optunas_sign_and_a_missing_value_violates() -> None:
    assert constraint_values([MEM], {PEAK_MEM_MB: 120.0}) == [pytest.approx(20.0)]
    assert constraint_values([MEM], {PEAK_MEM_MB: 80.0}) == [pytest.approx(-20.0)]
    assert constraint_values([Constraint(PEAK_MEM_MB, min=50.0)], {PEAK_MEM_MB: 40.0}) == [pytest.approx(10.0)]
    assert constraint_values([MEM], {}) == [math.inf]
    assert constraint_values([MEM], {PEAK_MEM_MB: math.nan}) == [math.inf]


def test_mark_feasible_flags_each_run_and_says_what_broke() -> None:
    trials = pd.DataFrame([
        {"method": "sgd", "hparams": {"lr": 0.1}, PEAK_MEM_MB: 80.0},
        {"method": "sam", "hparams": {"lr": 0.1, "rho": 0.05}, PEAK_MEM_MB: 80.0},  # 2 grad evals per step
        {"method": "sgd", "hparams": {"lr": 0.1}, PEAK_MEM_MB: 150.0},
        {"method": "sgd", "hparams": {"lr": 0.1}, PEAK_MEM_MB: math.nan}])
    out = mark_feasible(trials, [MEM, OVERHEAD])
    assert list(out["feasible"]) == [True, False, False, False]
    assert list(out["violated"]) == ["", "overhead 2 (needs <= 1.5)", f"{PEAK_MEM_MB} 150 (needs <= 100)",
                                     f"{PEAK_MEM_MB} missing (needs <= 100)"]
    assert "feasible" not in trials  # a copy: the caller's frame is untouched


def test_constraints_round_trip_through_the_stored_spec() -> None:
    stored = {"constraints": [MEM.to_dict(), Constraint("overhead", min=1.0, max=2.0).to_dict()]}
    assert constraints_from(stored) == (MEM, Constraint("overhead", min=1.0, max=2.0))
    assert constraints_from({}) == ()
