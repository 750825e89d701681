"""Hyperparameters: the `HParam` record, the checks a declaration picks from, and the shared ones.

Each family file declares the hyperparameters of its parts beside them, with their defaults and checks (the
way timm keeps an optimizer's defaults in its signature); `SHARED` holds only what several parts or the base
optimizer read. `HPARAMS` is every name together, read from the registered parts when looked up, so
`build_optimizer`, YAML specs and exported configs share one validation.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from methods._base_optimizers import check_base
from methods._errors import ConfigError
from methods._parts import PARTS
from methods._parts import names as part_names

SCHEDULES = ("constant", "linear", "cosine")


@dataclass(frozen=True)
class HParam:
    """One hyperparameter: default value, a coercing validator and a one-line meaning."""

    default: Any
    check: Callable[[str, Any], Any]
    doc: str


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or value is None:
        raise ConfigError(f"{name} must be a number, got {value!r}")
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(out):
        raise ConfigError(f"{name} must be finite, got {value!r}")
    return out


def number_in(low: float | None = None, high: float | None = None, *, low_open: bool = False,
           high_open: bool = False, optional: bool = False) -> Callable[[str, Any], Any]:
    def check(name: str, value: Any) -> float | None:
        if value is None and optional:
            return None
        out = _number(name, value)
        too_low = low is not None and (out <= low if low_open else out < low)
        too_high = high is not None and (out >= high if high_open else out > high)
        if too_low or too_high:
            lo = "-inf" if low is None else f"{low:g}"
            hi = "inf" if high is None else f"{high:g}"
            bounds = f"{'(' if low_open else '['}{lo}, {hi}{')' if high_open else ']'}"
            raise ConfigError(f"{name} must be in {bounds}, got {value!r}")
        return out
    return check


def integer_from(low: int, *, optional: bool = False) -> Callable[[str, Any], Any]:
    def check(name: str, value: Any) -> int | None:
        if value is None and optional:
            return None
        out = _number(name, value)
        if out != int(out) or out < low:
            raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")
        return int(out)
    return check


def flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{name} must be true or false, got {value!r}")
    return value


def one_of(*allowed: str) -> Callable[[str, Any], str]:
    def check(name: str, value: Any) -> str:
        if value not in allowed:
            raise ConfigError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")
        return value
    return check


def optional(check: Callable[[str, Any], Any]) -> Callable[[str, Any], Any]:
    """`check`, or None left unset (a knob that only one setting of another hyperparameter reads)."""
    def optional(name: str, value: Any) -> Any:
        return None if value is None else check(name, value)
    return optional


def part_choice(kind: str) -> Callable[[str, Any], str]:
    """A choice among the registered parts of `kind` (`_parts`), read when checked: a new part needs no edit here."""
    def check(name: str, value: Any) -> str:
        return one_of(*part_names(kind))(name, value)
    return check


def _betas(name: str, value: Any) -> tuple[float, float]:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise ConfigError(f"{name} must be a pair [beta1, beta2], got {value!r}")
    unit = number_in(0.0, 1.0, high_open=True)
    return (unit(f"{name}[0]", value[0]), unit(f"{name}[1]", value[1]))


SHARED: Mapping[str, HParam] = {
    # the base update
    "base": HParam("sgd", check_base, "base optimizer that takes the final gradient: sgd, adamw, any "
                   "torch.optim optimizer or pytorch-optimizer's (lower case: radam, lion, adan, ...)"),
    "lr": HParam(None, number_in(0.0, low_open=True), "learning rate"),
    "momentum": HParam(0.9, number_in(0.0, 1.0, high_open=True), "SGD momentum"),
    "nesterov": HParam(False, flag, "SGD Nesterov momentum"),
    "betas": HParam((0.9, 0.999), _betas, "AdamW betas"),
    "eps": HParam(1e-8, number_in(0.0, low_open=True), "AdamW epsilon"),
    "weight_decay": HParam(0.0, number_in(0.0), "decoupled for AdamW, L2 for SGD; never perturbed"),
    "grad_clip": HParam(None, number_in(0.0, low_open=True, optional=True),
                        "clip the final gradient's global norm"),
    # read by every part that follows a schedule
    "total_steps": HParam(None, integer_from(1, optional=True), "horizon T of the schedules"),
}


class _Every(Mapping[str, HParam]):
    """`SHARED` and every registered part's own declarations, gathered when read: a new part needs no edit here."""

    def __init__(self) -> None:
        self._cache: tuple[int, dict[str, HParam]] = (-1, {})

    def _table(self) -> dict[str, HParam]:
        if self._cache[0] != len(PARTS):
            table = dict(SHARED)
            for cls in PARTS.values():
                for name, hparam in cls.hparams.items():
                    if table.setdefault(name, hparam) is not hparam:
                        raise ValueError(f"hyperparameter {name!r} is declared twice ({cls.kind} {cls.name!r})")
            self._cache = (len(PARTS), table)
        return self._cache[1]

    def __getitem__(self, name: str) -> HParam:
        return self._table()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._table())

    def __len__(self) -> int:
        return len(self._table())


HPARAMS: Mapping[str, HParam] = _Every()

BASE_COMMON = frozenset({"base", "lr", "weight_decay", "grad_clip"})
BASE_ONLY = {"sgd": frozenset({"momentum", "nesterov"}), "adamw": frozenset({"betas", "eps"})}
BASE_NAMES = BASE_COMMON | BASE_ONLY["sgd"] | BASE_ONLY["adamw"]
DEFAULT_LR = {"sgd": 0.01, "adamw": 1e-3}


def schedule_factor(kind: str, step: int, total_steps: int | None) -> float:
    """s(t/T): 1 (constant), 1 - t/T (linear), (1 + cos(pi t/T)) / 2 (cosine); t/T clipped to 1."""
    if kind == "constant":
        return 1.0
    frac = min(step / total_steps, 1.0) if total_steps else 0.0
    if kind == "linear":
        return 1.0 - frac
    return 0.5 * (1.0 + math.cos(math.pi * frac))
