"""The parts a preset composes, by kind and name: each family file registers its own with `@part`.

A part is one choice for one piece of the step (docs/METHODS.md, "One composable step"): a perturbation
(`sam.py`), a preconditioner of it (`precondition.py`), a balancer (`bar.py`) or a boost (IRE, `ire.py`). Its
class says everything the registry needs to treat it as data: the hyperparameters it declares (each with its
default and check, in its own family file), the shared ones it reads, the gradient evaluations and forward
passes it adds to a step, the combinations it refuses, and why a backward closure cannot serve it. An
instance is built as `cls(passes, scope)` (`_kinds` states what each kind must do with it), holds the part's
own state, and owns one slice of the optimizer's `state_dict`, under its kind.

Adding a mechanism is one more registered class in its family file, named by a preset in
`catalogue.py`: nothing else changes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from methods._errors import ConfigError

KINDS = ("perturbation", "preconditioner", "balancer", "boost")


class Part:
    """One registered choice of one kind; subclasses override what differs from "adds nothing"."""

    kind: ClassVar[str] = ""
    name: ClassVar[str] = ""
    hparams: ClassVar[Mapping[str, Any]] = {}  # the hyperparameters it declares: name -> `HParam`
    reads: ClassVar[frozenset[str]] = frozenset()  # shared hyperparameters it reads (`_hparams.SHARED`)
    takes: ClassVar[frozenset[str]] = frozenset()  # hparams and reads together (set by `part`)
    extra_evals: ClassVar[float] = 0.0  # gradient evaluations per step, when they do not depend on hp

    @classmethod
    def evals(cls, hp: Mapping[str, Any]) -> float:
        """Gradient evaluations this part adds to a step."""
        return cls.extra_evals

    @classmethod
    def forwards(cls, hp: Mapping[str, Any], perturbing: bool) -> float:
        """Forward passes it adds: one per evaluation unless the part says otherwise."""
        return cls.evals(hp)

    @classmethod
    def check(cls, method: str, hp: Mapping[str, Any]) -> None:
        """Raise ConfigError for a combination that cannot work (each value alone is valid)."""

    @classmethod
    def needs_outputs(cls, method: str, hp: Mapping[str, Any]) -> tuple[str, str] | None:
        """(why this part needs the model's outputs, which a backward closure does not return; what to use
        instead), or None."""
        return None

    def state_dict(self) -> dict[str, Any]:
        """The part's own slice of the optimizer's `state_dict` (stored under its kind)."""
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        pass


PARTS: dict[tuple[str, str], type[Part]] = {}


def part(kind: str, name: str) -> Callable[[type[Part]], type[Part]]:
    """Class decorator: register the part `name` of `kind`."""
    if kind not in KINDS:
        raise ValueError(f"part kind must be one of {', '.join(KINDS)}; got {kind!r}")

    def register(cls: type[Part]) -> type[Part]:
        if (kind, name) in PARTS:
            raise ValueError(f"{kind} {name!r} is already registered")
        cls.kind, cls.name = kind, name
        cls.takes = frozenset(cls.hparams) | cls.reads
        PARTS[kind, name] = cls
        return cls
    return register


def names(kind: str) -> tuple[str, ...]:
    """The registered choices of `kind`, "none" first (the part left out)."""
    return ("none", *sorted(n for k, n in PARTS if k == kind))


def parts_of(preset: Any, hp: Mapping[str, Any] | None = None) -> list[type[Part]]:
    """The parts `preset` composes, in the step's order; the preconditioner only with `hp` (it is a
    hyperparameter, not part of the preset)."""
    wanted = [("perturbation", preset.perturbation), ("balancer", preset.balancer),
              ("boost", "ire" if preset.ire else "none")]
    if hp is not None and preset.perturbation != "none":
        wanted.insert(1, ("preconditioner", hp.get("preconditioner", "none")))
    out = []
    for kind, name in wanted:
        if name == "none":
            continue
        if (kind, name) not in PARTS:
            raise ConfigError(f"{kind} must be one of {', '.join(names(kind))}; got {name!r}")
        out.append(PARTS[kind, name])
    return out
