"""The Pareto front over the method table, on numbers worked out by hand: methods judged by the rule that
ranks them (the pessimistic interval bound, the mean without an interval)."""

from __future__ import annotations

import math

import pandas as pd

from tuner.results.method_table import pareto_front
from tuner.results.robust import pessimistic_value


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
