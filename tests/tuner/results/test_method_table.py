"""The per-method table (tuner.results.method_table), on numbers worked out by hand: the overhead against the
base optimizer, and the Pareto front, methods judged by the rule that ranks them (the pessimistic interval
bound, the mean without an interval)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from tuner.names import STEP_TIME_MS
from tuner.results.method_table import overheads, pareto_front
from tuner.results.robust import RobustResult, pessimistic_value


def test_pessimistic_value_is_the_worse_end_or_the_mean() -> None:
    assert pessimistic_value(0.8, 0.7, 0.9, "maximize") == 0.7
    assert pessimistic_value(0.8, 0.7, 0.9, "minimize") == 0.9
    assert pessimistic_value(0.8, math.nan, math.nan, "maximize") == 0.8


def _table(rows: list[tuple[str, float, float, float, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["method", "overhead", "mean", "low", "high"])


def test_front_by_the_lower_bound_when_maximising() -> None:
    table = _table([("sgd", 1.0, 0.80, 0.78, 0.82),
                    ("sam", 2.0, 0.86, 0.85, 0.87),
                    ("wide", 1.5, 0.90, 0.70, 1.10),  # best mean, but its lower bound loses to sgd's
                    ("nan", math.nan, 0.99, 0.98, 1.0)])  # no overhead: not on the plot, not on the front
    assert pareto_front(table, "maximize") == [(1.0, 0.80), (2.0, 0.86)]


def test_front_by_the_upper_bound_when_minimising() -> None:
    table = _table([("a", 1.0, 0.5, math.nan, math.nan), ("b", 1.2, 0.4, 0.3, 0.45), ("c", 1.4, 0.3, 0.1, 0.6)])
    assert pareto_front(table, "minimize") == [(1.0, 0.5), (1.2, 0.4)]  # c's upper end 0.6 is worse than b's


def _robust(methods: list[tuple[str, dict]]) -> RobustResult:
    winners = pd.DataFrame([{"method": m, "hparams": hp} for m, hp in methods])
    return RobustResult("eval/accuracy", "maximize", "search", "", pd.DataFrame(), winners)


def test_overhead_is_the_median_step_time_over_the_base_optimizers() -> None:
    rows = [("sgd", 10.0), ("sgd", 12.0), ("sgd", 500.0), ("sam", 21.0), ("sam", 23.0), ("sam", 1.0)]
    trials = pd.DataFrame([{"method": m, "status": "completed", STEP_TIME_MS: t} for m, t in rows]
                          + [{"method": "sam", "status": "diverged", STEP_TIME_MS: 1e6}])  # a diverged run: left out
    out = overheads(trials, _robust([("sam", {"lr": 0.1}), ("sgd", {"lr": 0.1})])).set_index("method")
    assert out.loc["sgd", "step_time_ms"] == 12.0 and out.loc["sam", "step_time_ms"] == 21.0  # medians
    assert out.loc["sam", "overhead"] == pytest.approx(21.0 / 12.0)
    assert out.loc["sam", "overhead_reference"] == "base sgd"
    assert out.loc["sgd", "overhead"] == 1.0


def test_without_its_base_a_method_is_measured_against_the_cheapest_and_says_so() -> None:
    trials = pd.DataFrame([{"method": m, "status": "completed", STEP_TIME_MS: t}
                           for m, t in [("sam", 20.0), ("sgd_ire", 11.0)]])
    out = overheads(trials, _robust([("sam", {"lr": 0.1}), ("sgd_ire", {"lr": 0.1})])).set_index("method")
    assert out.loc["sam", "overhead"] == pytest.approx(20.0 / 11.0)
    assert out.loc["sam", "overhead_reference"] == "cheapest (sgd_ire; base sgd not run)"
