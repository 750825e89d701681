"""Numbers as a reader should quote them: rounded to what their interval supports, never at float precision.

The rule (one place, used by the console summary and the claim table):

- a value with a 95 % interval is rounded to the decimal place of the first significant digit of the
  interval's half-width, and so are the interval's ends: 0.92525 with half-width 0.00955 prints 0.925,
  its interval [0.9157, 0.9348] prints [0.916, 0.935] (digits past the half-width's first are noise);
- a value without an interval (one run, or seeds that agree exactly) keeps `POINT_DIGITS` significant
  digits: 0.9252500000000001 prints 0.925;
- fixed notation between 1e-3 and 1e6, scientific outside (5.554e-08 prints 5.55e-08).
"""

from __future__ import annotations

import math

POINT_DIGITS = 3  # significant digits of a value that has no interval to round it by
FIXED_RANGE = (1e-3, 1e6)  # |value| in this range prints in fixed notation, else scientific


def _finite(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _exponent(x: float) -> int:
    """The power of ten of `x`'s first significant digit (0.00955 -> -3, 56 -> 1)."""
    return math.floor(math.log10(abs(x)))


def place(value: float, half_width: float | None = None) -> int:
    """The power of ten a value is rounded to: the half-width's first significant digit, else the place
    that leaves `POINT_DIGITS` significant digits of the value."""
    if _finite(half_width) and half_width > 0:
        return _exponent(half_width)
    if not _finite(value) or value == 0:
        return 0
    return _exponent(value) - (POINT_DIGITS - 1)


def fmt_at(value: float, exponent: int) -> str:
    """`value` rounded to the power of ten `exponent`, in fixed or scientific notation; '-' when not finite."""
    if not _finite(value):
        return "-"
    rounded = round(float(value), -exponent)
    if rounded == 0:
        return f"{0.0:.{-exponent}f}" if -6 <= exponent < 0 else "0"
    low, high = FIXED_RANGE
    if low <= abs(rounded) < high:
        return f"{rounded:.{max(0, -exponent)}f}"
    return f"{rounded:.{max(0, _exponent(rounded) - exponent)}e}"


def fmt_estimate(value: float, half_width: float | None = None) -> str:
    """A value rounded by the rule above: by its interval's half-width, else to `POINT_DIGITS` digits."""
    return fmt_at(value, place(value, half_width))


def fmt_interval(mean: float, low: float, high: float) -> tuple[str, str]:
    """(mean, "[low, high]") rounded alike, at the half-width's first significant digit; the interval is
    '-' when it is missing (and the mean keeps `POINT_DIGITS` digits)."""
    if not (_finite(low) and _finite(high)):
        return fmt_estimate(mean), "-"
    exponent = place(mean, (high - low) / 2)
    return fmt_at(mean, exponent), f"[{fmt_at(low, exponent)}, {fmt_at(high, exponent)}]"


def fmt_pm(mean: float, low: float, high: float) -> str:
    """`mean ± half-width`, both at the half-width's first significant digit (the mean alone without one)."""
    if not (_finite(low) and _finite(high)) or high <= low:
        return fmt_estimate(mean)
    half = (high - low) / 2
    exponent = place(mean, half)
    return f"{fmt_at(mean, exponent)} ± {fmt_at(half, exponent)}"
