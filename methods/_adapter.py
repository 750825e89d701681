"""`ClosureAdapter`: an optimizer written for PyTorch's usual closure, run under sharptune's protocol.

PyTorch's convention (davda54/sam and pytorch-optimizer follow it) is a closure that zeroes the
gradients, runs forward and backward, and returns the loss; SAM-style optimizers also expect the
first gradient to be there before `step`. sharptune's closure runs only the forward pass and returns
`(loss, outputs)`. The adapter turns one into the other, and every pass it makes is counted in
`counts` (ASHA's clock) and replayed as `SharpOptimizer` replays its own: the RNG state of the
first pass is restored before each later pass (same dropout mask) and BatchNorm statistics move in
the first pass only.

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

from methods._errors import ConfigError
from methods._passes import RngSnapshot, frozen_batchnorm
from methods._registry import BuildContext, MethodInfo

Driver = Callable[[Any, Callable[[], Tensor], Callable[[], None]], None]


def davda54(inner: Any, closure: Callable[[], Tensor], clip: Callable[[], None]) -> None:
    """The SAM convention: the first gradient before `step`, which calls the closure for the rest."""
    closure()
    inner.step(closure)


class _Passes:
    """The library-style closure of one step: zero, forward (replayed after the first), backward, loss."""

    def __init__(self, owner: ClosureAdapter, closure: Callable[[], Any]) -> None:
        self.owner, self.closure = owner, closure
        self.loss: Tensor | None = None
        self.rng: RngSnapshot | None = None

    def __call__(self) -> Tensor:
        owner = self.owner
        first = self.rng is None
        if first:
            self.rng = RngSnapshot(owner._cuda)
        else:
            self.rng.restore()
        frozen = contextlib.nullcontext() if first else frozen_batchnorm(owner._batchnorms)
        with frozen, torch.enable_grad():
            result = self.closure()
            loss = result[0] if isinstance(result, tuple) else result
            if not isinstance(loss, Tensor) or loss.numel() != 1:
                raise ConfigError("the closure must return (loss, outputs) with a scalar loss tensor")
            owner.counts["fwd"] += 1
            grads = torch.autograd.grad(loss, owner._params, allow_unused=True, materialize_grads=True)
        owner.counts["bwd"] += 1
        owner.counts["grad_evals"] += 1
        for p, g in zip(owner._params, grads, strict=True):
            p.grad = g
        if first:
            self.loss = loss.detach()
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
        self.counts = {"fwd": 0, "bwd": 0, "grad_evals": 0}
        self._params = [p for p in params if p.requires_grad]
        self._cuda = sorted({p.device for p in self._params if p.device.type == "cuda"}, key=str)
        self._batchnorms = list(context.batchnorms)
        self._drive, self._clips = drive, clips

    def scheduled_rho(self) -> float:
        """ρ as configured (the diagnostics' SAM edge never applies to a plug-in)."""
        return float(self.hparams.get("rho", 0.0))

    def _clip(self) -> None:
        limit = self.hparams.get("grad_clip")
        if limit is not None:
            torch.nn.utils.clip_grad_norm_(self._params, limit)

    def step(self, closure: Callable[[], Any] | None = None) -> Tensor:  # type: ignore[override]
        """One step of the wrapped optimizer on the closure's batch; returns the first-pass loss (detached)."""
        if closure is None:
            raise ConfigError(f"{self.method}: step() needs a closure returning (loss, outputs)")
        if self.hparams.get("grad_clip") is not None and not self._clips:
            raise ConfigError(f"{self.method} cannot clip its gradient: drop grad_clip")
        passes = _Passes(self, closure)
        self._drive(self.inner, passes, self._clip)
        if passes.loss is None:
            raise ConfigError(f"{self.method}: the optimizer took no gradient in its step")
        return passes.loss

    def state_dict(self) -> dict[str, Any]:  # type: ignore[override]
        """The wrapped optimizer's state plus the pass counts."""
        return {"method": self.method, "hparams": dict(self.hparams), "counts": dict(self.counts),
                "inner": self.inner.state_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:  # type: ignore[override]
        """Restore a state saved by `state_dict` of the same method on the same parameters."""
        if state_dict.get("method") != self.method:
            raise ConfigError(f"state_dict is for method {state_dict.get('method')!r}, not {self.method!r}")
        self.inner.load_state_dict(state_dict["inner"])
        self.param_groups = self.inner.param_groups
        self.base = getattr(self.inner, "base_optimizer", self.inner)
        self.counts = dict(state_dict["counts"])
