"""`register_method`: a method from outside the composable step, usable in specs exactly like a preset.

A plug-in brings its own builder, and declares what the tuner needs to treat it like any preset:
the hyperparameters it takes (with their checks), a default search space, its citation, and its
cost in gradient evaluations per step, which ASHA's clock and the budget count (the conformance
suite tests the declaration against the passes the closure really sees).

The optimizer `build` returns follows `SharpOptimizer`'s protocol: `step(closure)` with a closure
that runs the forward pass and returns `(loss, outputs)` without backward, and a `counts` dict
(`fwd`, `bwd`, `grad_evals`) that the method keeps up to date. `methods.ClosureAdapter` gives that
protocol to an optimizer written for PyTorch's usual closure (zero, forward, backward, return loss).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from importlib.metadata import entry_points
from typing import Any

from methods._errors import ConfigError
from methods._hparams import HPARAMS, HParam, flag, integer_from, number_in, one_of
from methods._registry import BuildContext, MethodInfo, Preset, register


def hparam(default: Any, *, low: float | None = None, high: float | None = None, integer: bool = False,
           choices: Sequence[str] | None = None, doc: str = "") -> HParam:
    """A hyperparameter for a plug-in: a number in [low, high] (an integer if asked), a choice, or a bool."""
    if choices is not None:
        return HParam(default, one_of(*choices), doc)
    if isinstance(default, bool):
        return HParam(default, flag, doc)
    if integer:
        return HParam(default, integer_from(int(low or 0)), doc)
    return HParam(default, number_in(low, high), doc)


def register_method(name: str, *, description: str, citation: str,
                    build: Callable[[list[Any], dict[str, Any], BuildContext], Any],
                    hyperparameters: Mapping[str, HParam | Any],
                    search_space: Mapping[str, Mapping[str, Any]],
                    grad_evals_per_step: float | Callable[[Mapping[str, Any]], float],
                    base: str = "sgd") -> MethodInfo:
    """Register a method built by `build(params, hparams, context)`; returns its `MethodInfo`.

    `hyperparameters` maps each name the method takes to an `HParam` (see `hparam`) or, for a name
    the library already knows (`lr`, `rho`, `momentum`, ...), to its default value (checked as the
    library checks it). `base` is the default base optimizer: `sgd`, `adamw`, any other base name, or
    the method's own name for a method that has no separate base. `grad_evals_per_step` is a number
    or a function of the resolved hyperparameters. Raises ConfigError for an inconsistent declaration.
    """
    own: dict[str, HParam] = {}
    for key, spec in hyperparameters.items():
        if isinstance(spec, HParam):
            own[key] = spec
        elif key in HPARAMS:
            own[key] = HParam(spec, HPARAMS[key].check, HPARAMS[key].doc)
        else:
            raise ConfigError(f"{name}: hyperparameter {key!r} is not one the library knows; give it as "
                              "methods.hparam(default, low=..., high=...)")
    if "base" not in own:
        own["base"] = HParam(base, HPARAMS["base"].check if base != name else one_of(name),
                             "base optimizer that takes the final gradient")
    if "lr" not in own:
        raise ConfigError(f"{name}: every method takes lr (the tuner and the schedules set it)")
    unknown = sorted(set(search_space) - set(own))
    if unknown:
        raise ConfigError(f"{name}: search_space names {unknown[0]!r}, which is not among its hyperparameters")
    defaults = {k: h.default for k, h in own.items() if h.default is not None}
    info = MethodInfo(name, description, citation, Preset(), base, defaults=defaults, search_space=dict(search_space),
                      build=build, own=own, cost=grad_evals_per_step)
    cost = info.grad_evals_per_step()  # the defaults resolve, and the cost is a number >= 1
    if not cost >= 1.0:
        raise ConfigError(f"{name}: grad_evals_per_step must be at least 1, got {cost!r}")
    return register(info)


ENTRY_POINT_GROUP = "sharptune.methods"


def load_entry_points() -> list[str]:
    """Run every `sharptune.methods` entry point (a function that calls `register_method`, or a module
    that does on import); returns their names. `import methods` runs this, so a plug-in installed as a
    package is registered in every process, Ray's trial workers included."""
    loaded = []
    for point in entry_points(group=ENTRY_POINT_GROUP):
        target = point.load()
        if callable(target):
            target()
        loaded.append(point.name)
    return loaded
