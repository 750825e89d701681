"""The summary's rounding rule against hand-computed cases (the issue's own rows among them)."""

from __future__ import annotations

import math

import pytest

from tuner.results.rounding import POINT_DIGITS, fmt_estimate, fmt_interval, fmt_pm


@pytest.mark.parametrize(("mean", "low", "high", "shown"), [
    # the rows: half-widths 0.00955, 0.00315, 0.04125 -> rounded at 1e-3, 1e-3, 1e-2
    (0.9252500000000001, 0.9157, 0.9348, ("0.925", "[0.916, 0.935]")),
    (0.8752, 0.8721, 0.8784, ("0.875", "[0.872, 0.878]")),
    (0.9087, 0.8675, 0.95, ("0.91", "[0.87, 0.95]")),
    # half-width 56 -> tens
    (1234.5, 1178.5, 1290.5, ("1230", "[1180, 1290]")),
    # half-width 0.25 -> tenths; an interval across zero
    (0.04, -0.21, 0.29, ("0.0", "[-0.2, 0.3]")),
    # no interval: POINT_DIGITS significant digits
    (0.9252500000000001, math.nan, math.nan, ("0.925", "-")),
])
def test_a_value_is_rounded_to_its_intervals_first_significant_digit(mean: float, low: float, high: float,
                                                                      shown: tuple[str, str]) -> None:
    assert fmt_interval(mean, low, high) == shown


@pytest.mark.parametrize(("value", "shown"), [
    (0.9252500000000001, "0.925"), (0.0123456, "0.0123"), (2.0, "2.00"), (2.1934, "2.19"), (1234.5, "1230"),
    (5.554e-08, "5.55e-08"), (12345678.0, "1.23e+07"), (0.0, "0"), (math.nan, "-"), (math.inf, "-"),
])
def test_a_point_estimate_keeps_three_significant_digits(value: float, shown: str) -> None:
    assert POINT_DIGITS == 3
    assert fmt_estimate(value) == shown


def test_mean_plus_minus_half_width() -> None:
    assert fmt_pm(0.935, 0.931, 0.939) == "0.935 ± 0.004"  # half-width 0.004 -> 1e-3
    assert fmt_pm(0.9087, 0.8675, 0.95) == "0.91 ± 0.04"  # half-width 0.04125 -> 1e-2
    assert fmt_pm(0.5, math.nan, math.nan) == "0.500"  # no interval: the point rule
    assert fmt_pm(0.5, 0.5, 0.5) == "0.500"  # seeds that agree exactly: no interval to round by
