"""The search-space vocabulary: a parameter (`Param`), when it applies (`is_active`), and the grid it spans.

A parameter is a float or int range (`low`, `high` inclusive, `log`, `step`), a list of choices
(`categorical`) or a fixed `value`, maybe conditional (`when: {param: [values]}`; `method` selects
methods). A method's space is an ordered mapping `name -> Param` in which each parameter comes after
the ones its `when:` reads, with `defaults` giving the value of every name the trial does not sample.

`Param.distribution()` is the one translation of a parameter into Optuna's terms: the sampler's space
(`tuner.run.optuna_space`), the warm start's check (`tuner.run.initial_trials`) and the importances
(`tuner.results.importances`, from the space stored with the experiment) all use it. Optuna is imported
there only, so reading a spec loads no sampler. This module does not know the spec (`tuner.spec` builds
spaces from YAML and a method's defaults).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tuner.value_rules import is_number as _is_number
from tuner.value_rules import plain as _plain
from tuner.value_rules import same_value as _same

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution

# The most configs a grid may hold: the spec refuses more (one trial per config, and 10^4 trials is more than
# any study here runs), so counting stops just past it, which keeps validating a huge grid cheap, and
# `grid_configs` of a checked spec never meets it. One value for both: the count is what the spec checks.
MAX_GRID_POINTS = 10_000


@dataclass(frozen=True, eq=False)
class Param:
    """One parameter of the space: a range, a list of choices, or a fixed value, maybe conditional."""

    name: str
    type: str  # float | int | categorical | fixed
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    values: tuple[Any, ...] = ()
    value: Any = None
    when: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    line: int | None = None  # where the spec wrote it; None for a method's default
    origin: str = "spec"  # spec | method default

    @property
    def path(self) -> str:
        return f"parameters.{self.name}"

    def count(self) -> float:
        """How many values `candidates` holds, without making them (inf for a range without step)."""
        if self.type == "fixed":
            return 1
        if self.type == "categorical":
            return len(self.values)
        if self.type == "int":
            return (int(self.high) - int(self.low)) // int(self.step or 1) + 1
        if self.step is None:
            return math.inf
        count = (self.high - self.low) / self.step
        return count + 1 if math.isfinite(count) else math.inf

    def candidates(self) -> tuple[Any, ...] | None:
        """Every value it can take when that is a finite list (grid search), else None."""
        if self.type == "fixed":
            return (self.value,)
        if self.type == "categorical":
            return self.values
        if self.type == "int":
            return tuple(range(int(self.low), int(self.high) + 1, int(self.step or 1)))
        if self.step is None:
            return None
        count = int(round((self.high - self.low) / self.step))
        return tuple(round(self.low + i * self.step, 12) for i in range(count + 1))

    def probes(self) -> tuple[Any, ...]:
        """Values worth checking against a method: the ends, a non-integer middle, every choice."""
        if self.type == "fixed":
            return (self.value,)
        if self.type == "categorical":
            return self.values
        if self.type == "int":
            return (int(self.low), int(self.high))
        middle = math.sqrt(self.low * self.high) if self.log else (self.low + self.high) / 2
        return (self.low, middle, self.high)

    def contains(self, value: Any) -> bool:
        """Can the parameter take `value`? (answers `when:` lists)."""
        if self.type in ("fixed", "categorical"):
            return any(_same(value, v) for v in self.probes())
        if not _is_number(value):
            return False
        return self.low <= value <= self.high and (self.type == "float" or float(value).is_integer())

    def distribution(self) -> BaseDistribution | None:
        """The Optuna distribution the sampler draws it from (log and step as declared); None when fixed."""
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        if self.type == "float":
            return FloatDistribution(self.low, self.high, log=self.log, step=self.step)
        if self.type == "int":
            return IntDistribution(int(self.low), int(self.high), log=self.log, step=int(self.step or 1))
        if self.type == "categorical":
            return CategoricalDistribution(list(self.values))
        return None  # fixed: not sampled

    @classmethod
    def from_dict(cls, name: str, spec: Mapping[str, Any], origin: str = "spec") -> Param:
        """A parameter from the vocabulary `to_dict` writes (a method's default space, a stored space)."""
        when = {str(k): tuple(v) for k, v in (spec.get("when") or {}).items()}
        if "value" in spec:
            return cls(name, "fixed", value=spec["value"], when=when, origin=origin)
        if spec.get("type", "categorical") == "categorical":
            return cls(name, "categorical", values=tuple(spec["values"]), when=when, origin=origin)
        return cls(name, spec["type"], low=spec["low"], high=spec["high"], log=bool(spec.get("log", False)),
                   step=spec.get("step"), when=when, origin=origin)

    def to_dict(self) -> dict[str, Any]:
        """The spec vocabulary again (what `parameters` accepts)."""
        if self.type == "fixed":
            out: dict[str, Any] = {"value": _plain(self.value)}
        elif self.type == "categorical":
            out = {"type": "categorical", "values": list(self.values)}
        else:
            out = {"type": self.type, "low": self.low, "high": self.high}
            if self.log:
                out["log"] = True
            if self.step is not None:
                out["step"] = self.step
        if self.when:
            out["when"] = {k: list(v) for k, v in self.when.items()}
        return out




def is_active(p: Param, method: str, chosen: Mapping[str, Any], own: Mapping[str, Param],
              defaults: Mapping[str, Any]) -> bool:
    """Does `p` apply, given the method and what the trial holds so far? (`when:` evaluated)."""
    for cond, values in p.when.items():
        if cond == "method":
            current = method
        elif cond in chosen:
            current = chosen[cond]
        elif cond in own:  # conditional itself and switched off: so is everything that reads it
            return False
        else:
            current = defaults.get(cond)
        if not any(_same(current, v) for v in values):
            return False
    return True


def _enumerate(method: str, own: Mapping[str, Param], defaults: Mapping[str, Any],
               limit: int) -> list[dict[str, Any]]:
    points: list[dict[str, Any]] = [{}]
    for name, p in own.items():
        if p.count() > limit:  # counted, not made: a 10^7-point range is refused at once
            raise _TooMany
        grown: list[dict[str, Any]] = []
        for point in points:
            if is_active(p, method, point, own, defaults):
                grown.extend({**point, name: v} for v in p.candidates() or ())
            else:
                grown.append(point)
            if len(grown) > limit:
                return grown
        points = grown
    return [{"method": method, **point} for point in points]


def count_grid_points(methods: tuple[str, ...], space: Mapping[str, Mapping[str, Param]],
                      defaults: Mapping[str, Mapping[str, Any]], limit: int = MAX_GRID_POINTS) -> int:
    """How many configs the grid holds (stops counting past `limit`); used while validating."""
    try:
        return sum(len(_enumerate(m, space[m], defaults[m], limit)) for m in methods)
    except _TooMany:
        return limit + 1


class _TooMany(Exception):
    """One parameter alone has more values than the grid may hold."""




def grid_configs(methods: tuple[str, ...], space: Mapping[str, Mapping[str, Param]],
                 defaults: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Every config of a grid, method by method; each is a product of that method's values only."""
    try:
        configs = [p for m in methods for p in _enumerate(m, space[m], defaults[m], MAX_GRID_POINTS)]
    except _TooMany:
        configs = [{}] * (MAX_GRID_POINTS + 1)
    if len(configs) > MAX_GRID_POINTS:
        raise ValueError(f"the grid has more than {MAX_GRID_POINTS} points (the spec check refuses it)")
    return configs
