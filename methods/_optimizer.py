"""`SharpOptimizer`: the parts its preset composes, run in docs/METHODS.md's order on the pass engine (`Passes`).

    step(closure)                                                                    the part's file
      1. g = ∇L(θ) on the batch; BatchNorm statistics move in this pass only      engine (sam.py's own for fsam)
      2. perturb: θ remembered, θ ← θ + ε from the (preconditioned) g              sam.py, precondition.py
         g̃ = perturbed_gradient at θ + ε on the replayed batch, then restore θ    sam.py
      3. balance each pair (x, y) using g                                         bar.py
      4. estimate: every K steps after IRE's warm-up, a new flat-direction mask    ire.py
         (its `fisher` pass is a second backward through pass 1's forward when nothing perturbed θ)
      5. the base step with g̃ (SGD or AdamW, weight decay there only; clipped if asked), and IRE's
         boost κ · mask ⊙ Δ once the lr warm-up is over                            ire.py, or the base's own

Each part is a class its family file registers (`_parts`), built as `cls(passes, scope)` (`_kinds`); the
preset names them (`catalogue.py`). A part keeps its own state and owns one slice of `state_dict`, under
its kind; a state dict saved before the slices existed (flat) still loads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from methods._base_optimizers import build_base
from methods._distributed import average_
from methods._engine import Closure, Passes
from methods._errors import ConfigError
from methods._kinds import Balancer, Boost, Perturbation, Preconditioner
from methods._pairs import Pair
from methods._parts import parts_of
from methods._precision import NonFiniteGradient
from methods._protocol import check_closure_style
from methods._registry import MethodInfo


class SharpOptimizer(torch.optim.Optimizer):
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
        super().__init__(params, {"lr": hparams["lr"]})
        self.info, self.method, self.hparams = info, info.name, dict(hparams)
        self.base = build_base(self.param_groups, self.hparams)  # sgd, adamw or any base by name
        self.param_groups = self.base.param_groups
        trainable = [p for g in self.param_groups for p in g["params"] if p.requires_grad]
        self.passes = Passes(trainable, self.base, self.hparams, state=self.state, pairs=[tuple(p) for p in pairs],
                             names=names, batchnorms=batchnorms, closure_style=closure_style, precision=precision)
        everything = list(range(len(trainable)))
        perturbed = sorted({i for pair in self.passes.pair_index for i in pair}) \
            if info.preset.perturb_scope == "pairs" else everything  # lora_sam: only the pairs' parameters move
        scopes = {"perturbation": perturbed, "preconditioner": perturbed}
        self.parts = {cls.kind: cls(self.passes, scopes.get(cls.kind, everything))
                      for cls in parts_of(info.preset, self.hparams)}
        self.perturbation: Perturbation | None = self.parts.get("perturbation")  # type: ignore[assignment]
        self.preconditioner: Preconditioner | None = self.parts.get("preconditioner")  # type: ignore[assignment]
        self.balancer: Balancer | None = self.parts.get("balancer")  # type: ignore[assignment]
        self.boost: Boost | None = self.parts.get("boost")  # type: ignore[assignment]

    @property
    def counts(self) -> dict[str, int]:
        """Forward passes, backward passes and gradient evaluations so far."""
        return self.passes.counts

    @property
    def loss_scale(self) -> Any:
        """fp16's dynamic loss scale (`_precision.Precision`); inert otherwise."""
        return self.passes.loss_scale

    @property
    def closure_style(self) -> str:
        return self.passes.closure_style

    def scheduled_rho(self) -> float:
        """ρ of the next step: rho · s(t/T) under rho_schedule; 0 for methods that do not perturb."""
        return 0.0 if self.perturbation is None else self.perturbation.rho()

    def step(self, closure: Closure | None = None) -> Tensor:  # type: ignore[override]
        """One full step on the closure's batch; returns the first-pass loss (detached).

        Under fp16, a pass with a non-finite gradient skips the step (θ and the state unchanged) and
        lowers the loss scale.
        """
        if closure is None:
            raise ConfigError(f"{self.method}: step() needs a closure returning (loss, outputs)")
        self.passes.first_loss = None
        try:
            self._step_on(closure)
        except NonFiniteGradient:
            self.passes.loss_scale.update(False)
        else:
            self.passes.loss_scale.update(True)
        return self.passes.first_loss.detach()

    def _step_on(self, closure: Closure) -> None:
        passes, sam, bar, ire = self.passes, self.perturbation, self.balancer, self.boost
        estimate = ire is not None and ire.estimating(passes.step)
        # IRE's Fisher pass reuses the step's forward when θ has not moved since (no perturbation): one more
        # backward through the same graph instead of a replayed forward and backward
        reuse_forward = estimate and ire.fisher and sam is None
        replays = sam is not None or (estimate and ire.fisher and not reuse_forward)
        rng = passes.snapshot() if replays else None

        if sam is None:
            _, outputs, grads = passes.loss_grads(closure, keep_graph=reuse_forward)
            final = grads
        else:
            grads, outputs = sam.first_gradient(closure)
            sam.perturb(grads, closure, rng, self.preconditioner)
            if not sam.sync and (bar is not None or estimate):  # perturb_sync local: g averaged once BAR/IRE read it
                average_(grads)
            try:
                final = sam.perturbed_gradient(closure, rng)
            finally:  # θ comes back even when an fp16 pass overflowed
                sam.restore()
        if bar is not None:
            bar.balance(grads)
        if estimate:
            ire.estimate(grads, closure, rng, outputs if reuse_forward else None)
        for p, g in zip(passes.params, final, strict=True):
            p.grad = g
        if self.hparams["grad_clip"] is not None:
            torch.nn.utils.clip_grad_norm_(passes.params, self.hparams["grad_clip"])
        if ire is not None:
            ire.base_step(final)
        else:
            self.base.step()
        passes.step += 1

    def state_dict(self) -> dict[str, Any]:  # type: ignore[override]
        """The engine's slice (base state, counts, step, RNG), each part's slice under its kind, per-parameter state."""
        per_param = {i: {k: v.clone() for k, v in self.state[p].items()}
                     for i, p in enumerate(self.passes.params) if self.state.get(p)}
        return {"method": self.method, "hparams": dict(self.hparams), "engine": self.passes.state_dict(),
                "parts": {kind: part.state_dict() for kind, part in self.parts.items()}, "per_param": per_param}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:  # type: ignore[override]
        """Restore a state saved by `state_dict` of the same method on the same parameters (or a flat one, saved
        before the parts owned slices: its keys are the engine's and the parts' together)."""
        if state_dict.get("method") != self.method:
            raise ConfigError(f"state_dict is for method {state_dict.get('method')!r}, not {self.method!r}")
        flat = "parts" not in state_dict
        self.passes.load_state_dict(state_dict if flat else state_dict["engine"])
        self.param_groups = self.base.param_groups
        for kind, part in self.parts.items():
            part.load_state_dict(state_dict if flat else state_dict["parts"].get(kind, {}))
        self.state.clear()
        for i, entries in state_dict["per_param"].items():
            p = self.passes.params[int(i)]
            self.state[p] = {k: v.to(p.device).clone() for k, v in entries.items()}
