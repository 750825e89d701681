"""VaSSO: SAM perturbed along an average of the gradients, not the last one (variance suppression).

Li and Giannakis, Enhancing Sharpness-Aware Optimization Through Variance Suppression, NeurIPS 2023
(arXiv 2309.15639); the rule is the official code's, BingcongLi/VaSSO at 3524bad, solver/vasso.py:

    d_0 = g_0;   d_t = (1 − θ) d_{t−1} + θ g_t           (`vasso_theta` = θ, the weight of the new gradient)
    ε_t = ρ d_t / (‖d_t‖ + 1e-7),   g̃ = ∇L(θ_t + ε_t) on the same batch, θ_t restored, the base step with g̃

‖·‖ is one norm over every parameter, g the loss gradient alone (SGD's weight decay and momentum act in the
base step, as the official `base_optimizer.step()`). θ = 1 is SAM. d is kept per parameter as `vasso_d`.
Everything else is SAM's (`sam.py`): this file is the one class and the preset (`catalogue.py`) a new
perturbation needs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from methods._engine import Closure
from methods._errors import ConfigError
from methods._hparams import HParam, number_in
from methods._parts import part
from methods._replay import RngSnapshot, kept_copy
from methods.precondition import PRECONDITIONING
from methods.sam import PERTURBATION, Sam

AVERAGING: Mapping[str, HParam] = {
    "vasso_theta": HParam(0.9, number_in(0.0, 1.0, low_open=True),
                          "VaSSO: weight of the new gradient in the perturbation's average d (1: SAM; official 0.9)"),
}


@part("perturbation", "vasso")
class Vasso(Sam):
    """ε along d_t, the exponential average of the gradients (official: d_0 = g_0, ‖d‖ + 1e-7)."""

    pending: list[Tensor]  # d_t of the step under way
    spare: list[Tensor] | None = None  # the buffer it is computed in: d_{t-1}'s once d_t is kept

    hparams = {**{k: v for k, v in PERTURBATION.items() if k not in {*PRECONDITIONING, "precond_normalize"}},
               **AVERAGING}  # the official rule has no preconditioner
    norm_eps = 1e-7  # the official code's

    @classmethod
    def check(cls, method: str, hp: Mapping[str, Any]) -> None:
        if hp["perturb_sync"] == "local":
            raise ConfigError(f"{method} (VaSSO) keeps an average of the gradient it perturbs with, which "
                              "perturb_sync: local leaves different on every worker; use perturb_sync: global")

    @torch.no_grad()
    def direction(self, grads: list[Tensor]) -> list[Tensor]:
        """d_t from g_t (the official `ema`), in a buffer of its own: the state's d_{t-1} stays until the step's
        perturbed pass succeeded (an fp16 overflow skips the step and leaves the state as it was)."""
        state = self.passes.state
        previous = [state[p]["vasso_d"] for p in self.params] if "vasso_d" in state[self.params[0]] else None
        self.spare = self.pending = kept_copy(self.spare, grads if previous is None else previous)
        if previous is not None:  # the official in-place update, on the copy
            theta = self.passes.hparams["vasso_theta"]
            torch._foreach_mul_(self.pending, 1.0 - theta)
            torch._foreach_add_(self.pending, grads, alpha=theta)
        return self.pending

    def perturbed_gradient(self, closure: Closure, rng: RngSnapshot) -> list[Tensor]:
        """SAM's g̃; then d_t joins the state, and d_{t-1}'s buffer is the next step's (no allocation a step)."""
        grads = super().perturbed_gradient(closure, rng)
        state = self.passes.state
        self.spare = [state[p]["vasso_d"] for p in self.params] if "vasso_d" in state[self.params[0]] else None
        for p, average in zip(self.params, self.pending, strict=True):
            state[p]["vasso_d"] = average
        return grads
