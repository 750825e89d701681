"""The metric's axis on the scale its drawn values need: linear, unless they span more than two decades.

A loss that falls from 1 to 1e-8 (the smoke spec's valley) is a flat line at zero on a linear axis, so the
methods cannot be told apart. Such an axis is logarithmic; when a value is exactly 0 (a trial that reached
the minimum), it is symmetric-logarithmic, linear below the smallest positive value, so the 0 is still
drawn, at the bottom. Accuracies, and any metric with a negative value, stay linear. The scale is read
from what the axis draws (points, curves, error bars), so the rule holds for every figure that calls it.
"""

from __future__ import annotations

import math

import numpy as np
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection, PathCollection
from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullLocator

from dashboards.axes import tick_text

LINEAR, LOG, SYMLOG = "linear", "log", "symlog"
MAX_LINEAR_SPAN = 100.0  # largest / smallest positive value above this: a log axis
MAX_TICKS = 6  # labels on a 4-inch axis that do not run together


def drawn_values(ax: Axes, which: str = "y") -> np.ndarray:
    """The finite coordinates `ax` draws along `which` ("x" or "y"): lines, scatter points, error bars."""
    col = 0 if which == "x" else 1
    parts: list[np.ndarray] = [np.asarray(line.get_xdata() if col == 0 else line.get_ydata(), dtype=float).ravel()
                               for line in ax.get_lines()]
    for coll in ax.collections:
        if isinstance(coll, PathCollection):
            offsets = np.ma.filled(np.ma.asarray(coll.get_offsets(), dtype=float), np.nan)
            if offsets.size:
                parts.append(offsets.reshape(-1, 2)[:, col])
        elif isinstance(coll, LineCollection):
            parts += [np.asarray(seg, dtype=float).reshape(-1, 2)[:, col] for seg in coll.get_segments()]
    values = np.concatenate(parts) if parts else np.empty(0)
    return values[np.isfinite(values)]


def metric_scale(values: np.ndarray) -> tuple[str, float | None]:
    """(scale, linthresh): log when the positive values span > MAX_LINEAR_SPAN and none is negative,
    symlog (linear below the smallest positive value) when a 0 is among them, else linear."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    positive = values[values > 0]
    if len(positive) < 2 or (values < 0).any() or positive.max() / positive.min() <= MAX_LINEAR_SPAN:
        return LINEAR, None
    if (values == 0).any():
        return SYMLOG, float(positive.min())
    return LOG, None


def scale_metric_axis(ax: Axes, which: str = "y") -> str:
    """Put the metric's axis `which` of `ax` on `metric_scale` of what it draws; say so in its label."""
    values = drawn_values(ax, which)
    scale, linthresh = metric_scale(values)
    if scale == LINEAR:
        return scale
    axis = ax.xaxis if which == "x" else ax.yaxis
    set_scale, set_lim = (ax.set_xscale, ax.set_xlim) if which == "x" else (ax.set_yscale, ax.set_ylim)
    if scale == LOG:
        set_scale(LOG)
        axis.set_major_locator(LogLocator(base=10, numticks=MAX_TICKS))
        axis.set_label_text(f"{axis.get_label_text()} (log scale)")
        return scale
    top = 10.0 ** math.ceil(math.log10(float(values.max())) + 0.05)  # the decade above, its tick drawn
    set_scale(SYMLOG, linthresh=linthresh, linscale=1.0)
    set_lim(0.0, top)  # nothing is negative: no mirrored half
    axis.set_major_locator(FixedLocator([0.0, *_decades_above(linthresh, top)]))
    axis.set_minor_locator(NullLocator())
    axis.set_major_formatter(FuncFormatter(_power_text))
    axis.set_label_text(f"{axis.get_label_text()} (log scale with 0)")
    return scale


def _decades_above(low: float, high: float) -> list[float]:
    """Powers of ten in (low, high], thinned to MAX_TICKS - 1, none within one step of the 0 tick."""
    first, last = math.floor(math.log10(low)) + 1, math.ceil(math.log10(high))
    step = max(1, math.ceil((last - first + 1) / (MAX_TICKS - 1)))
    return [10.0 ** k for k in range(last, first - 1, -step) if 10.0 ** k > low * 10.0 ** step][::-1]


def _power_text(value: float, _pos: int | None = None) -> str:
    if value == 0:
        return "0"
    exponent = math.log10(abs(value))
    return f"$10^{{{round(exponent)}}}$" if abs(exponent - round(exponent)) < 1e-9 else tick_text(value)
