"""What each kind of part must do: one `typing.Protocol` per kind, one constructor for all.

Every part is built as `cls(passes, scope)`: `passes` is the step's `Passes` (the only view of the
optimizer a part gets) and `scope` the indices into `passes.params` it acts on (the perturbation's and
its preconditioner's: every parameter, or the pairs' for lora_sam; the others': every parameter).
`SharpOptimizer._step_on` calls the methods below in docs/METHODS.md's order, and nothing else.
tests/architecture checks that every registered part has its kind's methods and this constructor.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from torch import Tensor

from methods._engine import Closure, Passes
from methods._replay import RngSnapshot


@runtime_checkable
class Stateful(Protocol):
    def __init__(self, passes: Passes, scope: Sequence[int]) -> None: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: Mapping[str, Any]) -> None: ...


@runtime_checkable
class Preconditioner(Stateful, Protocol):
    """P⁻¹ g for the perturbation, from statistics of the steps before this one (`precondition.py`)."""

    def __call__(self, grads: list[Tensor], closure: Closure, rng: RngSnapshot | None) -> list[Tensor]: ...


@runtime_checkable
class Perturbation(Stateful, Protocol):
    """davda54/sam's two phases: θ ← θ + ε from g, the gradient there on the replayed batch, θ back (`sam.py`)."""

    sync: bool  # False under perturb_sync local: g is this rank's own until the engine averages it

    def rho(self) -> float: ...

    def first_gradient(self, closure: Closure) -> tuple[list[Tensor], Any]: ...

    def perturb(self, grads: list[Tensor], closure: Closure, rng: RngSnapshot,
                precondition: Preconditioner | None) -> None: ...

    def perturbed_gradient(self, closure: Closure, rng: RngSnapshot) -> list[Tensor]: ...

    def restore(self) -> None: ...


@runtime_checkable
class Balancer(Stateful, Protocol):
    """Rescales every pair from the first gradient, before the base step (`bar.py`)."""

    def balance(self, grads: list[Tensor]) -> None: ...


@runtime_checkable
class Boost(Stateful, Protocol):
    """Sets a mask now and then, and takes the base step itself, boosted (IRE, `ire.py`)."""

    fisher: bool  # its estimate takes a Fisher pass (a backward through the step's forward when θ did not move)

    def estimating(self, step: int) -> bool: ...

    def estimate(self, grads: list[Tensor], closure: Closure, rng: RngSnapshot | None, outputs: Any) -> None: ...

    def base_step(self, final: list[Tensor]) -> None: ...


PROTOCOLS: Mapping[str, type] = {"perturbation": Perturbation, "preconditioner": Preconditioner,
                                 "balancer": Balancer, "boost": Boost}
