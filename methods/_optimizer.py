"""`SharpOptimizer`: the pass engine (`_engine`) and the parts its preset composes, in docs/METHODS.md's order.

    step(closure)                                                                    the part's file
      1. g = ∇L(θ) on the batch; BatchNorm statistics move in this pass only      engine (sam.py's own for fsam)
      2. perturb: θ remembered, θ ← θ + ε from the (preconditioned) g              sam.py, precondition.py
         g̃ = perturbed_gradient at θ + ε on the replayed batch, then restore θ    sam.py
      3. balance each pair (x, y) using g                                         bar.py
      4. estimate: every K steps after IRE's warm-up, a new flat-direction mask    ire.py
         (its `fisher` pass is a second backward through pass 1's forward when nothing perturbed θ)
      5. the base step with g̃ (SGD or AdamW, weight decay there only; clipped if asked), and IRE's
         boost κ · mask ⊙ Δ once the lr warm-up is over                            ire.py, or the base's own

Each part is a class its family file registers (`_parts`); the preset names them (`catalogue.py`). A
part keeps its own state (the preconditioner's statistics, IRE's mask cache and κ logic) and its slice
of `state_dict`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from methods._distributed import average_
from methods._engine import Closure, Engine
from methods._errors import ConfigError
from methods._pairs import Pair
from methods._parts import parts_of
from methods._passes import RngSnapshot
from methods._precision import NonFiniteGradient
from methods._protocol import check_closure_style
from methods._registry import MethodInfo


class SharpOptimizer(Engine):
    """A SAM-family method as a `torch.optim.Optimizer`: build it with `methods.build_optimizer`.

    `step(closure)` needs a closure that runs the forward pass on the current batch and returns
    `(loss, outputs)` without calling backward: the method takes every gradient it needs itself.
    `counts` holds the running totals of forward passes, backward passes and gradient evaluations.
    `closure_style="backward"` takes torch's closures instead (zero, forward, backward, return the
    loss; see `_protocol`). `precision` ("fp32", "bf16", "fp16") autocasts every pass, and for fp16
    scales each pass's loss (`loss_scale`, see `_precision`). Under torch.distributed every gradient
    the method takes is averaged across ranks.
    """

    def __init__(self, params: Sequence[Tensor] | Sequence[dict[str, Any]], *, info: MethodInfo,
                 hparams: dict[str, Any], pairs: Sequence[Pair] = (),
                 batchnorms: Sequence[nn.Module] = (), names: Mapping[int, str] | None = None,
                 closure_style: str = "outputs", precision: str = "fp32") -> None:
        check_closure_style(info, hparams, closure_style, precision)
        super().__init__(params, hparams, batchnorms=batchnorms, closure_style=closure_style, precision=precision)
        self.info, self.method = info, info.name
        index = {id(p): i for i, p in enumerate(self._params)}
        missing = [k for k, pair in enumerate(pairs) if any(id(t) not in index for t in pair)]
        if missing:
            raise ConfigError(f"pairs[{missing[0]}] holds a tensor that is not a trainable parameter of the optimizer")
        self._pairs = [tuple(pair) for pair in pairs]
        self._pair_index = [(index[id(x)], index[id(y)]) for x, y in self._pairs]
        self._step = 0
        parts = {cls.kind: cls(self, names or {}) for cls in parts_of(info.preset)}
        self._parts = list(parts.values())
        self._sam, self._bar, self._ire = parts.get("perturbation"), parts.get("balancer"), parts.get("ire")

    def scheduled_rho(self) -> float:
        """ρ of the next step: rho · s(t/T) under rho_schedule; 0 for methods that do not perturb."""
        return 0.0 if self._sam is None else self._sam.rho()

    def step(self, closure: Closure | None = None) -> Tensor:  # type: ignore[override]
        """One full step on the closure's batch; returns the first-pass loss (detached).

        Under fp16, a pass with a non-finite gradient skips the step (θ and the state unchanged) and
        lowers the loss scale.
        """
        if closure is None:
            raise ConfigError(f"{self.method}: step() needs a closure returning (loss, outputs)")
        self._first_loss = None
        try:
            self._step_on(closure)
        except NonFiniteGradient:
            self.loss_scale.update(False)
        else:
            self.loss_scale.update(True)
        return self._first_loss.detach()

    def _step_on(self, closure: Closure) -> None:
        sam, bar, ire = self._sam, self._bar, self._ire
        estimate = ire is not None and ire.estimating(self._step)
        # IRE's Fisher pass reuses the step's forward when θ has not moved since (no perturbation): one more
        # backward through the same graph instead of a replayed forward and backward
        reuse_forward = estimate and ire.fisher and sam is None
        replays = sam is not None or (estimate and ire.fisher and not reuse_forward)
        rng = RngSnapshot(self._cuda) if replays else None

        if sam is None:
            _, outputs, grads = self._loss_grads(closure, keep_graph=reuse_forward)
            final = grads
        else:
            grads, outputs = sam.first_gradient(closure)
            sam.perturb(grads, closure, rng)
            if not sam.sync and (bar is not None or estimate):  # perturb_sync local: g averaged once BAR/IRE read it
                average_(grads)
            try:
                final = sam.perturbed_gradient(closure, rng)
            finally:  # θ comes back even when an fp16 pass overflowed
                sam.restore()
        if bar is not None:
            self._balance(grads)
        if estimate:
            ire.estimate(grads, closure, rng, outputs if reuse_forward else None)
        for p, g in zip(self._params, final, strict=True):
            p.grad = g
        if self.hparams["grad_clip"] is not None:
            torch.nn.utils.clip_grad_norm_(self._params, self.hparams["grad_clip"])
        if ire is not None:
            ire.base_step(final)
        else:
            self.base.step()
        self._step += 1

    def _balance(self, grads: list[Tensor]) -> None:
        """Step 3: BAR's scaling of every pair from the first gradient (bar.py)."""
        self._bar.balance(grads)

    def state_dict(self) -> dict[str, Any]:  # type: ignore[override]
        """Base optimizer state plus everything the method keeps: masks, statistics, counters, RNG."""
        state = {"method": self.method, "hparams": dict(self.hparams), **self._engine_state(), "step": self._step,
                 "precond_steps": 0, "peak_lr": [g["lr"] for g in self.param_groups], "lr_warm": False,
                 "last_lr": []}  # the parts' slices, as a method without the part leaves them
        for part in self._parts:
            state.update(part.state_dict())
        state["per_param"] = {i: {k: v.clone() for k, v in self.state[p].items()}
                              for i, p in enumerate(self._params) if self.state.get(p)}
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:  # type: ignore[override]
        """Restore a state saved by `state_dict` of the same method on the same parameters."""
        if state_dict.get("method") != self.method:
            raise ConfigError(f"state_dict is for method {state_dict.get('method')!r}, not {self.method!r}")
        self._load_engine_state(state_dict)
        self._step = state_dict["step"]
        for part in self._parts:
            part.load_state_dict(state_dict)
        self.state.clear()
        for i, entries in state_dict["per_param"].items():
            p = self._params[int(i)]
            self.state[p] = {k: v.to(p.device).clone() for k, v in entries.items()}
