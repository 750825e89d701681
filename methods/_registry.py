"""The registry machinery: `MethodInfo`, `Preset`, `register`, `get_method`, `list_methods`.

A method is data, not a class: the optimizer is one composable step, and a preset only picks the
parts (`_parts`); what a method accepts and costs is derived from the parts it picks. The methods
themselves are listed in `catalogue.py`. Providers (modules that register methods, such as the
pytorch-optimizer comparators) are imported on the first lookup, so `import methods` stays light and
the integrations import this module, never the other way round.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from methods._base_optimizers import BUILTIN, base_takes, default_lr
from methods._errors import ConfigError
from methods._hparams import BASE_COMMON, BASE_NAMES, DEFAULT_LR, HPARAMS, HParam
from methods._parts import parts_of

BASE_SPECIFIC = BASE_NAMES - BASE_COMMON  # momentum, nesterov (sgd); betas, eps (adamw); others by signature


@dataclass(frozen=True)
class BuildContext:
    """What `build_optimizer` knows beyond parameters and hyperparameters, handed to a plug-in's `build`."""

    model: nn.Module | None
    names: Mapping[int, str]  # id(parameter) -> its name, where known
    pairs: Sequence[Any]  # scale-invariant (x, y) pairs
    batchnorms: Sequence[nn.Module]  # to freeze during replayed passes


@dataclass(frozen=True)
class Preset:
    """Which of the five parts a method uses (the parts' knobs are hyperparameters)."""

    perturbation: str = "none"  # none, or a registered perturbation: sam | asam | functional | vasso
    balancer: str = "none"  # none | obar | nbar
    ire: bool = False
    perturb_scope: str = "all"  # all | pairs (lora_sam: only the LoRA pair parameters)


@dataclass(frozen=True)
class MethodInfo:
    """A registered method: what it is, where it comes from, what it costs, how to tune it."""

    name: str
    description: str
    citation: str
    preset: Preset
    default_base: str
    defaults: Mapping[str, Any] = field(default_factory=dict)
    search_space: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # plug-ins (`register_method`): their own builder, every hyperparameter they take, declared cost
    build: Callable[[list[Any], dict[str, Any], BuildContext], Any] | None = None
    own: Mapping[str, HParam] = field(default_factory=dict)
    cost: float | Callable[[Mapping[str, Any]], float] | None = None

    @property
    def plugin(self) -> bool:
        """A method registered with its own builder (not a preset of the composable step)."""
        return self.build is not None

    @property
    def needs_pairs(self) -> bool:
        """Balancers and LoRA-restricted SAM act on scale-invariant pairs and need some."""
        return self.preset.balancer != "none" or self.preset.perturb_scope == "pairs"

    @property
    def hyperparameters(self) -> frozenset[str]:
        """Every name `build_optimizer` accepts for this method (with any base)."""
        if self.plugin:
            return frozenset(self.own)
        return frozenset(BASE_NAMES.union(*(part.takes for part in parts_of(self.preset))))

    def resolve(self, hparams: Mapping[str, Any], *, need_horizon: bool = True) -> dict[str, Any]:
        """Validate user hyperparameters and fill defaults; raise ConfigError naming the field.

        `need_horizon=False` skips only the check that a schedule has its `total_steps`: the cost of a
        step does not depend on the horizon, and the horizon is computed from that cost.
        """
        unknown = sorted(set(hparams) - self.hyperparameters)
        if unknown:
            raise ConfigError(
                f"unknown hyperparameter {unknown[0]!r} for method {self.name!r}; "
                f"valid: {', '.join(sorted(self.hyperparameters))}")
        table = {**HPARAMS, **self.own}
        base = table["base"].check("base", hparams.get("base", self.defaults.get("base", self.default_base)))
        other = _other_base_names(self, base, hparams)
        allowed = (self.hyperparameters - other) | {"base"}
        out: dict[str, Any] = {"base": base}
        for name in sorted(allowed - {"base"}):
            if name in hparams:
                value = hparams[name]
            elif name in self.defaults:
                value = self.defaults[name]
            elif name == "lr":
                value = DEFAULT_LR[base] if base in DEFAULT_LR else default_lr(base)
            else:
                value = table[name].default
            out[name] = table[name].check(name, value)
        if not self.plugin:
            _check_combination(self, out, need_horizon)
        return out

    def grad_evals_per_step(self, **hparams: Any) -> float:
        """Declared gradient evaluations per step; `opt.counts` must match it (tested)."""
        hp = self.resolve(hparams, need_horizon=False)
        if self.plugin:
            return float(self.cost(hp) if callable(self.cost) else self.cost)  # type: ignore[arg-type]
        return 1.0 + sum(part.evals(hp) for part in parts_of(self.preset, hp))

    def forwards_per_step(self, **hparams: Any) -> float:
        """Declared forward passes per step: one per gradient evaluation, except IRE's Fisher pass
        without a perturbation, which is a second backward through the step's own forward."""
        if self.plugin:
            return self.grad_evals_per_step(**hparams)
        hp, perturbing = self.resolve(hparams, need_horizon=False), self.preset.perturbation != "none"
        return 1.0 + sum(part.forwards(hp, perturbing) for part in parts_of(self.preset, hp))


def _other_base_names(info: MethodInfo, base: str, hparams: Mapping[str, Any]) -> frozenset[str]:
    """Base-specific names `base` does not take; a ConfigError if the user set one of them."""
    specific = info.hyperparameters & BASE_SPECIFIC
    if not specific:
        return frozenset()
    other = frozenset(specific - base_takes(base))
    wrong = sorted(set(hparams) & other)
    if wrong and base in BUILTIN:
        owner = "adamw" if base == "sgd" else "sgd"
        raise ConfigError(f"{wrong[0]} belongs to base {owner!r}, but {info.name} uses base {base!r}; "
                          f"set base: {owner} or drop {wrong[0]}")
    if wrong:
        takes = ", ".join(sorted(base_takes(base) | {"lr", "weight_decay"}))
        raise ConfigError(f"base {base!r} of {info.name} takes no {wrong[0]} (it takes {takes}); drop {wrong[0]}")
    return other


def _check_combination(info: MethodInfo, hp: Mapping[str, Any], need_horizon: bool = True) -> None:
    """Combinations that are individually valid but cannot work together."""
    for part in parts_of(info.preset, hp):  # each part's own constraints (AdamW's second moments, ...)
        part.check(info.name, hp)
    schedules = [k for k in ("schedule", "rho_schedule") if hp.get(k, "constant") != "constant"]
    if need_horizon and schedules and hp.get("total_steps") is None:
        raise ConfigError(f"{schedules[0]} {hp[schedules[0]]!r} needs total_steps (the schedule's horizon)")


_REGISTRY: dict[str, MethodInfo] = {}
_UNAVAILABLE: dict[str, str] = {}  # known methods whose library is not installed -> what to install
_PROVIDERS: list[str] = []  # modules that register methods when imported, imported on the first lookup


def register_provider(module: str) -> None:
    """Name a module that registers methods when imported; it is imported on the first lookup (lazily)."""
    _PROVIDERS.append(module)


def _load_providers() -> None:
    while _PROVIDERS:  # popped first: a provider's own registrations see an empty list
        importlib.import_module(_PROVIDERS.pop(0))


def register_unavailable(name: str, why: str) -> None:
    """Name a method that exists only with an optional extra, so that asking for it says what to install."""
    _UNAVAILABLE[name] = why


def register(info: MethodInfo) -> MethodInfo:
    """Add a method; names are unique."""
    _load_providers()
    if info.name in _REGISTRY:
        raise ValueError(f"method {info.name!r} is already registered")
    _REGISTRY[info.name] = info
    return info


def unavailable_reason(name: str) -> str | None:
    """Why a known method is not registered here (its optional extra is missing), or None."""
    _load_providers()
    return _UNAVAILABLE.get(name)


def list_methods() -> list[MethodInfo]:
    """Every registered method, sorted by name."""
    _load_providers()
    return [_REGISTRY[name] for name in sorted(_REGISTRY)]


def get_method(name: str) -> MethodInfo:
    """The method called `name`, or a ConfigError that lists every valid name."""
    _load_providers()
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        if isinstance(name, str) and name in _UNAVAILABLE:
            raise ConfigError(_UNAVAILABLE[name]) from None
        raise ConfigError(f"unknown method {name!r}; valid: {', '.join(sorted(_REGISTRY))}") from None
