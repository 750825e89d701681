"""`ClosureAdapter`: an optimizer written for PyTorch's usual closure, run under sharptune's protocol.

PyTorch's convention (davda54/sam and pytorch-optimizer follow it) is a closure that zeroes the
gradients, runs forward and backward, and returns the loss; SAM-style optimizers also expect the
first gradient to be there before `step`. sharptune's closure runs only the forward pass and returns
`(loss, outputs)`. The adapter turns one into the other, and every pass it makes is counted in
`counts` (ASHA's clock) and replayed as `SharpOptimizer` replays its own, on the same pass engine
(`Passes`): the RNG state of the first pass is restored before each later pass (same dropout mask),
BatchNorm statistics move in the first pass only, and under torch.distributed each gradient is averaged.

A driver says how one step of the wrapped optimizer uses the closure:
`drive(inner, closure, clip)`, where `closure()` is one counted forward+backward pass and `clip()`
clips the current gradient to `grad_clip` (call it just before the final update).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from methods._engine import Passes
from methods._errors import ConfigError
from methods._registry import BuildContext, MethodInfo
from methods._replay import RngSnapshot

Driver = Callable[[Any, Callable[[], Tensor], Callable[[], None]], None]


def davda54(inner: Any, closure: Callable[[], Tensor], clip: Callable[[], None]) -> None:
    """The SAM convention: the first gradient before `step`, which calls the closure for the rest."""
    closure()
    inner.step(closure)


class _LibraryClosure:
    """The library-style closure of one step: every call one counted pass on `Passes` (replayed after the first),
    its gradients left in `p.grad`, the loss returned."""

    def __init__(self, passes: Passes, closure: Callable[[], Any]) -> None:
        self.passes, self.closure = passes, closure
        self.rng: RngSnapshot | None = None

    def __call__(self) -> Tensor:
        first = self.rng is None
        if first:
            self.rng = self.passes.snapshot()
        with contextlib.nullcontext() if first else self.passes.replay(self.rng):
            loss, _, grads = self.passes.loss_grads(self.closure)
        for p, g in zip(self.passes.params, grads, strict=True):
            p.grad = g
        return loss.detach()


class ClosureAdapter(torch.optim.Optimizer):
    """`inner` (built for PyTorch's closure convention) behind `SharpOptimizer`'s interface.

    `step(closure)` takes sharptune's forward-only closure and returns the first-pass loss; `counts`
    holds forward passes, backward passes and gradient evaluations; `state_dict` round-trips `inner`.
    """

    def __init__(self, inner: Any, *, info: MethodInfo, hparams: dict[str, Any], context: BuildContext,
                 drive: Driver = davda54, clips: bool = False) -> None:
        params = [p for g in inner.param_groups for p in g["params"]]
        super().__init__(params, {"lr": hparams["lr"]})
        self.inner, self.info, self.method, self.hparams = inner, info, info.name, dict(hparams)
        self.param_groups = inner.param_groups
        self.base = getattr(inner, "base_optimizer", inner)
        self.passes = Passes([p for p in params if p.requires_grad], self.base, self.hparams, state=self.state,
                             names=context.names, batchnorms=context.batchnorms)
        self._drive, self._clips = drive, clips

    @property
    def counts(self) -> dict[str, int]:
        """Forward passes, backward passes and gradient evaluations so far."""
        return self.passes.counts

    def scheduled_rho(self) -> float:
        """ρ as configured (the diagnostics' SAM edge never applies to a plug-in)."""
        return float(self.hparams.get("rho", 0.0))

    def _clip(self) -> None:
        limit = self.hparams.get("grad_clip")
        if limit is not None:
            torch.nn.utils.clip_grad_norm_(self.passes.params, limit)

    def step(self, closure: Callable[[], Any] | None = None) -> Tensor:  # type: ignore[override]
        """One step of the wrapped optimizer on the closure's batch; returns the first-pass loss (detached)."""
        if closure is None:
            raise ConfigError(f"{self.method}: step() needs a closure returning (loss, outputs)")
        if self.hparams.get("grad_clip") is not None and not self._clips:
            raise ConfigError(f"{self.method} cannot clip its gradient: drop grad_clip")
        self.passes.first_loss = None
        self._drive(self.inner, _LibraryClosure(self.passes, closure), self._clip)
        if self.passes.first_loss is None:
            raise ConfigError(f"{self.method}: the optimizer took no gradient in its step")
        self.passes.step += 1
        return self.passes.first_loss.detach()

    def state_dict(self) -> dict[str, Any]:  # type: ignore[override]
        """The wrapped optimizer's state plus the pass counts."""
        return {"method": self.method, "hparams": dict(self.hparams), "counts": dict(self.counts),
                "step": self.passes.step, "inner": self.inner.state_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:  # type: ignore[override]
        """Restore a state saved by `state_dict` of the same method on the same parameters."""
        if state_dict.get("method") != self.method:
            raise ConfigError(f"state_dict is for method {state_dict.get('method')!r}, not {self.method!r}")
        self.inner.load_state_dict(state_dict["inner"])
        self.param_groups = self.inner.param_groups
        self.base = self.passes.base = getattr(self.inner, "base_optimizer", self.inner)
        self.passes.counts = dict(state_dict["counts"])
        self.passes.step = state_dict.get("step", 0)
