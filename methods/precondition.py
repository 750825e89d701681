"""Preconditioners of the SAM family's perturbation: P = diag(sqrt(v) + eps), applied as P⁻¹ g (docs/METHODS.md).

`adam` reads the base AdamW's bias-corrected second moment (from the previous base step);
`ema_sq` keeps its own EMA of g² (works with SGD); `fisher` keeps an EMA of the squared gradient
of the loss on labels sampled from the model's own predictions.

One rule for all three: P at step t is built from statistics of steps before t only, so the
current g² never enters its own preconditioner (AdamW's v̂ is from the previous base step; the
EMAs take this step's square after P is applied). Before any statistics exist, P is the identity.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from methods._engine import Closure, Passes
from methods._errors import ConfigError
from methods._hparams import HParam, number_in, part_choice
from methods._parts import Part, part
from methods._replay import RngSnapshot

PRECONDITIONING: Mapping[str, HParam] = {  # the perturbation takes these (sam.py), the preconditioner reads them
    "preconditioner": HParam("none", part_choice("preconditioner"), "preconditioner of the perturbation"),
    "precond_beta": HParam(0.999, number_in(0.0, 1.0, high_open=True), "EMA factor of ema_sq / fisher"),
    "precond_eps": HParam(1e-8, number_in(0.0, low_open=True), "P = diag(sqrt(v) + precond_eps)"),
}


def adam_second_moment(base: torch.optim.Optimizer, params: Sequence[Tensor]) -> list[Tensor] | None:
    """AdamW's bias-corrected v̂ per parameter (one foreach division), or None before its first step.

    The step counts are read on the host: AdamW keeps them as CPU scalars (unless capturable or fused)."""
    beta2 = base.param_groups[0]["betas"][1]
    states = [base.state.get(p) for p in params]
    if not all(state and "exp_avg_sq" in state for state in states):
        return None
    corrections = [1.0 - beta2 ** float(state["step"]) for state in states]
    return list(torch._foreach_div([state["exp_avg_sq"] for state in states], corrections)) if states else []


def update_ema(stats: list[Tensor], squares: Sequence[Tensor], beta: float) -> None:
    """v ← beta v + (1 - beta) s, in place."""
    torch._foreach_mul_(stats, beta)
    torch._foreach_add_(stats, list(squares), alpha=1.0 - beta)


def apply_inverse(grads: Sequence[Tensor], second_moment: Sequence[Tensor] | None, eps: float) -> list[Tensor]:
    """P⁻¹ g with P = diag(sqrt(v) + eps); identity when there is no v yet."""
    if second_moment is None:
        return list(grads)
    denom = torch._foreach_sqrt(list(second_moment))
    torch._foreach_add_(denom, eps)
    return torch._foreach_div(list(grads), denom)


@part("preconditioner", "adam")
class Adam(Part):
    """P from the base AdamW's v̂ of the previous step; the identity before its first step."""

    hparams = PRECONDITIONING

    def __init__(self, passes: Passes, scope: Sequence[int]) -> None:
        self.passes, self.params = passes, [passes.params[i] for i in scope]

    @classmethod
    def check(cls, method: str, hp: Mapping[str, Any]) -> None:
        if hp["base"] != "adamw":
            raise ConfigError(f"preconditioner 'adam' reads AdamW's second moments, but {method} uses base "
                              f"{hp['base']!r}; use preconditioner: ema_sq (keeps its own statistics) or base: adamw")

    def __call__(self, grads: list[Tensor], closure: Closure, rng: RngSnapshot | None) -> list[Tensor]:
        second_moment = adam_second_moment(self.passes.base, self.params)
        return apply_inverse(grads, second_moment, self.passes.hparams["precond_eps"])


@part("preconditioner", "ema_sq")
class EmaSquare(Part):
    """P from its own EMA of g² (any base), kept per parameter as `precond_v`; this step's square joins after."""

    hparams = PRECONDITIONING

    def __init__(self, passes: Passes, scope: Sequence[int]) -> None:
        self.passes, self.scope, self.params = passes, list(scope), [passes.params[i] for i in scope]
        self.steps = 0  # EMA updates so far: the bias correction

    @classmethod
    def check(cls, method: str, hp: Mapping[str, Any]) -> None:
        if hp.get("perturb_sync") == "local":  # squares of each worker's own g: statistics that drift apart
            raise ConfigError(f"preconditioner {cls.name!r} keeps statistics of the gradient it preconditions, "
                              f"which perturb_sync: local leaves different on every worker; use preconditioner: "
                              f"adam, fisher or none with perturb_sync: local, or perturb_sync: global")

    def squares(self, grads: list[Tensor], closure: Closure, rng: RngSnapshot | None) -> list[Tensor]:
        return torch._foreach_mul(grads, grads)

    def __call__(self, grads: list[Tensor], closure: Closure, rng: RngSnapshot | None) -> list[Tensor]:
        hp, state = self.passes.hparams, self.passes.state
        for p in self.params:  # allocated once (setdefault would build, and fill, a zero tensor every step)
            if "precond_v" not in state[p]:
                state[p]["precond_v"] = torch.zeros_like(p)
        stats = [state[p]["precond_v"] for p in self.params]
        # like `adam`, P comes from the previous steps' statistics: this step's square joins afterwards
        previous = torch._foreach_div(stats, 1.0 - hp["precond_beta"] ** self.steps) if self.steps else None
        out = apply_inverse(grads, previous, hp["precond_eps"])
        update_ema(stats, self.squares(grads, closure, rng), hp["precond_beta"])
        self.steps += 1
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"precond_steps": self.steps}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.steps = state["precond_steps"]


@part("preconditioner", "fisher")
class Fisher(EmaSquare):
    """P from an EMA of the squared gradient on labels sampled from the model (one more pass a step)."""

    extra_evals = 1.0

    @classmethod
    def check(cls, method: str, hp: Mapping[str, Any]) -> None:
        """Any perturb_sync: its squares are of an averaged gradient (the engine's), the same on every worker."""

    @classmethod
    def needs_outputs(cls, method: str, hp: Mapping[str, Any]) -> tuple[str, str] | None:
        return "preconditioner 'fisher' samples labels from the model's outputs", "preconditioner: ema_sq"

    def squares(self, grads: list[Tensor], closure: Closure, rng: RngSnapshot | None) -> list[Tensor]:
        fisher = self.passes.fisher_squares(closure, rng, "preconditioner 'fisher'")  # restricted to the scope
        return [fisher[i] for i in self.scope]
