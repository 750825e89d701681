"""A hyperparameter's axis on its search distribution's own scale, read from the space stored with the experiment.

The runner logs each method's resolved space with the spec (`space:` in the parent run's spec.yaml, and
resolved_spec.yaml beside the store). A `log: true` range is drawn on a log axis, any other range on a
linear one, a categorical as its choices; the axis spans the searched range, so the reader sees where the
trials fell within it. The scale is never guessed from the sampled values: an experiment without a stored
space gets a linear axis that says so.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

LOG, LINEAR, CATEGORICAL, UNKNOWN = "log", "linear", "categorical", "unknown"
SEARCHED_TYPES = ("float", "int", "categorical")
MAX_TICKS = 5  # a 4-inch panel holds five short labels without them running together


@dataclass(frozen=True)
class ParamAxis:
    """How one hyperparameter is drawn: `scale` (log | linear | categorical | unknown) and the searched range."""

    name: str
    scale: str
    low: float | None = None
    high: float | None = None
    integer: bool = False
    choices: tuple[Any, ...] = ()

    @property
    def label(self) -> str:
        if self.scale == CATEGORICAL:
            return f"{self.name} (choices)"
        if self.scale == UNKNOWN:
            return f"{self.name} (linear: no stored space)"
        return f"{self.name} ({self.scale} scale, {tick_text(self.low)}–{tick_text(self.high)})"


def param_axis(space: Mapping[str, Any] | None, name: str, values: Sequence[Any] = ()) -> ParamAxis:
    """The axis of `name` from a method's stored space (`{name: {type, low, high, log, values}}`); without
    one, the values' choices when they are not all numbers, else a linear axis marked unknown."""
    spec = (space or {}).get(name)
    if not isinstance(spec, Mapping):
        present = [v for v in values if v is not None]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
            return ParamAxis(name, UNKNOWN)
        unique = {repr(v): v for v in present}
        return ParamAxis(name, CATEGORICAL, choices=tuple(unique[k] for k in sorted(unique)))
    kind = spec.get("type")
    if kind == "categorical":
        return ParamAxis(name, CATEGORICAL, choices=tuple(spec.get("values") or ()))
    low, high = spec.get("low"), spec.get("high")
    return ParamAxis(name, LOG if spec.get("log") else LINEAR, float(low), float(high), integer=kind == "int")


def searched_in_space(space: Mapping[str, Any] | None) -> list[str] | None:
    """The names the stored space searches (ranges and choices; fixed values left out), None without a space."""
    if not space:
        return None
    return [k for k, v in space.items() if isinstance(v, Mapping) and v.get("type") in SEARCHED_TYPES]


def tick_text(value: float | None) -> str:
    """Short and unambiguous: 0.05, 300, 2e-5 (never 2.0000000000000002e-05 nor an offset like +1e-3)."""
    if value is None or not math.isfinite(value):
        return "—"
    if value == 0:
        return "0"
    if 1e-3 <= abs(value) < 1e4:
        return f"{value:.3g}"
    mantissa, exponent = f"{value:.1e}".split("e")
    return f"{mantissa.removesuffix('.0')}e{int(exponent)}"


def positions(axis: ParamAxis, values: Sequence[Any], jitter_seed: int = 0) -> np.ndarray:
    """Where each trial's value goes on the axis (a categorical: its choice's index, slightly jittered)."""
    if axis.scale != CATEGORICAL:
        return np.asarray([math.nan if v is None or isinstance(v, bool) else float(v) for v in values], dtype=float)
    choices = [repr(c) for c in _choices(axis, values)]
    x = np.asarray([choices.index(repr(v)) for v in values], dtype=float)
    return x + np.random.default_rng(jitter_seed).uniform(-0.08, 0.08, len(x))


def _choices(axis: ParamAxis, values: Sequence[Any]) -> list[Any]:
    seen = [repr(c) for c in axis.choices]
    extra = sorted({repr(v) for v in values} - set(seen))  # a value outside the stored choices (an enqueued one)
    return list(axis.choices) + [next(v for v in values if repr(v) == r) for r in extra]


def choice_text(value: Any) -> str:
    return value if isinstance(value, str) else repr(value)


def apply_axis(ax: Axes, axis: ParamAxis, values: Sequence[Any], x: np.ndarray) -> None:
    """Scale, range, ticks and label of the x axis for `axis`, given the values drawn at `x`."""
    ax.set_xlabel(axis.label)
    if axis.scale == CATEGORICAL:
        choices = _choices(axis, values)
        ax.set_xticks(range(len(choices)), [choice_text(c) for c in choices],
                      rotation=30 if sum(len(choice_text(c)) for c in choices) > 24 else 0)
        ax.set_xlim(-0.5, len(choices) - 0.5)
        return
    finite = x[np.isfinite(x)]
    low = min([v for v in (axis.low, *finite) if v is not None], default=0.0)
    high = max([v for v in (axis.high, *finite) if v is not None], default=1.0)
    if axis.scale == LOG and low > 0:
        ax.set_xscale("log")
        decades = math.log10(high / low) if high > low else 1.0
        pad = (high / low) ** 0.04 if high > low else 2.0
        ax.set_xlim(low / pad, high * pad)
        subs = (1.0, 2.0, 5.0) if decades <= 2 else (1.0, 3.0) if decades <= 2.5 else (1.0,)
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=subs, numticks=MAX_TICKS + 1))
        ax.xaxis.set_minor_locator(LogLocator(base=10, subs=tuple(range(1, 10)), numticks=12))
        ax.xaxis.set_minor_formatter(NullFormatter())
    else:
        pad = (high - low) * 0.05 if high > low else max(abs(low) * 0.1, 1.0)
        ax.set_xlim(low - pad, high + pad)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=MAX_TICKS, integer=axis.integer))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: tick_text(v)))
