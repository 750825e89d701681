"""One composable optimizer step: base update × perturbation × preconditioner × balancer × IRE.

Order within `step(closure)` (METHODS.md):
  1. g = ∇L(θ) on the batch (pass 1; BatchNorm statistics move here only).
  2. perturbation: ε from (preconditioned) g; g̃ = ∇L(θ+ε) (or, for `functional`, J(θ+ε)ᵀ ∂ℓ/∂z(θ));
     θ restored exactly.
  3. balancer: scale each pair (x, y) using g.
  4. IRE: every K steps after its warm-up, a new flat-direction mask from the curvature estimate
     (its `fisher` pass is a second backward through pass 1's forward when nothing perturbed θ).
  5. base step (SGD or AdamW, weight decay there only) with g̃ (clipped if asked);
     IRE then adds κ · mask ⊙ Δ, once the lr warm-up is over (each group's lr has reached its
     configured peak or stopped rising); with heavy-ball SGD, step and boost are one pass over θ.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from methods._base_optimizers import build_base
from methods._distributed import average_
from methods._errors import ConfigError
from methods._hparams import schedule_factor
from methods._pairs import Pair
from methods._passes import RngSnapshot, frozen_batchnorm, logits_of, sample_labels
from methods._precision import NonFiniteGradient, Precision
from methods._protocol import check_closure_style
from methods._registry import MethodInfo
from methods.bar import adam_ratio, balance
from methods.ire import (
    adamw_states,
    boost,
    boost_along,
    boost_factors,
    boost_weights,
    boosted_adamw_step,
    boosted_heavy_ball_step,
    flat_mask,
    heavy_ball_directions,
    ire_start,
)
from methods.precondition import adam_second_moment, apply_inverse, update_ema
from methods.sam import global_norm, is_weight, perturbation

Closure = Callable[[], Any]


def _build_base(params: list[dict[str, Any]], hp: dict[str, Any]) -> torch.optim.Optimizer:
    return build_base(params, hp)  # sgd, adamw or any other base by name (methods._base_optimizers)


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
        self.closure_style = closure_style
        self.info = info
        self.method = info.name
        self.hparams = dict(hparams)
        self.base = _build_base(self.param_groups, self.hparams)
        self.param_groups = self.base.param_groups
        self.counts = {"fwd": 0, "bwd": 0, "grad_evals": 0}
        self._params = [p for g in self.param_groups for p in g["params"] if p.requires_grad]
        index = {id(p): i for i, p in enumerate(self._params)}
        missing = [k for k, pair in enumerate(pairs) if any(id(t) not in index for t in pair)]
        if missing:
            raise ConfigError(f"pairs[{missing[0]}] holds a tensor that is not a trainable parameter of the optimizer")
        self._pairs = [tuple(pair) for pair in pairs]
        self._pair_index = [(index[id(x)], index[id(y)]) for x, y in self._pairs]
        self._batchnorms = list(batchnorms)
        self._scope = (sorted({i for pair in self._pair_index for i in pair})
                       if info.preset.perturb_scope == "pairs" else list(range(len(self._params))))
        self._scope_params = [self._params[i] for i in self._scope]  # what the perturbation moves
        names = names or {}
        self._asam_scaled = [hparams.get("asam_scope") == "all" or is_weight(names.get(id(p)), p)
                             for p in self._scope_params]  # ASAM: T = |θ| + η here, 1 elsewhere
        self._cuda = sorted({p.device for p in self._params if p.device.type == "cuda"}, key=str)
        self.loss_scale = Precision(precision, "cuda" if self._cuda else "cpu")
        self._generator = torch.Generator().manual_seed(0)  # label sampling; never touches the global RNG
        self._device_generators: dict[str, torch.Generator] = {}  # the same on accelerators, one per device
        self._step = 0
        self._precond_steps = 0
        self._peak_lr = [g["lr"] for g in self.param_groups]  # the configured lr: IRE's κ decay reference
        self._lr_warm = False  # IRE: whether the lr warm-up is over (no boost before, as in the official code)
        self._last_lr: list[float] = []  # each group's lr at the previous step
        self._ire_warmup = ire_start(hparams) if info.preset.ire else 0
        group_of = {id(p): k for k, g in enumerate(self.param_groups) for p in g["params"]}
        self._group = [group_of[id(p)] for p in self._params]  # param index -> param group index
        self._group_index = [[i for i, k in enumerate(self._group) if k == g] for g in range(len(self.param_groups))]
        # IRE's fused heavy-ball step keeps 1 + κ·mask in θ's dtype: exact enough in fp32/fp64 only
        self._fusable = all(p.dtype in (torch.float32, torch.float64) for p in self._params)
        self._buffers: dict[str, list[Tensor]] = {}  # scratch copies of θ, allocated once (see _copy_of)
        # IRE: (path, κ per param, −κ·mask for the lerp or 1 + κ·mask for the heavy-ball step); derived
        self._boost: tuple[str, tuple[float, ...], list[Tensor]] | None = None
        self._masks: list[Tensor] | None = None  # IRE: the state's masks in θ's order; derived
        self._first_loss: Tensor | None = None  # the step's first-pass loss, what step() returns

    # ------------------------------------------------------------------ passes
    def _forward(self, closure: Closure) -> tuple[Tensor, Any]:
        with torch.enable_grad(), self.loss_scale.autocast():
            result = closure()
        loss, outputs = result if isinstance(result, tuple) else (result, None)
        if not isinstance(loss, Tensor) or loss.numel() != 1:
            raise ConfigError("the closure must return (loss, outputs) with a scalar loss tensor")
        self.counts["fwd"] += 1
        if self._first_loss is None:
            self._first_loss = loss
        return loss, outputs

    def _grad(self, output: Tensor, inputs: Sequence[Tensor], grad_outputs: Tensor | None = None,
              keep_graph: bool = False) -> list[Tensor]:
        """∇ of `output` (a loss, or outputs with a cotangent) over `inputs`, parameters first: the
        parameters' part unscaled (fp16) and averaged over ranks; a further input's keeps the scale.
        `keep_graph`: the forward's graph stays for one more backward through the same outputs."""
        if grad_outputs is None:
            output = self.loss_scale.scaled(output)
        grads = list(torch.autograd.grad(output, list(inputs), grad_outputs, retain_graph=keep_graph,
                                         allow_unused=True, materialize_grads=True))
        self.counts["bwd"] += 1
        self.counts["grad_evals"] += 1
        own = grads[:len(self._params)]
        self.loss_scale.unscale_(own)
        average_(own)
        return grads

    def _loss_grads(self, closure: Closure, keep_graph: bool = False) -> tuple[Tensor, Any, list[Tensor]]:
        """One forward and backward on the batch: loss, outputs and the parameters' gradients."""
        if self.closure_style == "outputs":
            loss, outputs = self._forward(closure)
            return loss, outputs, self._grad(loss, self._params, keep_graph=keep_graph)
        for p in self._params:
            p.grad = None
        with torch.enable_grad(), self.loss_scale.autocast():
            result = closure()  # zeroes, forwards, calls backward, returns the loss (torch's convention)
        loss = result[0] if isinstance(result, tuple) else result
        if not isinstance(loss, Tensor) or loss.numel() != 1:
            raise ConfigError("closure_style='backward': the closure must call backward() and return the scalar loss")
        if self._first_loss is None:
            self._first_loss = loss
        grads = [torch.zeros_like(p) if p.grad is None else p.grad for p in self._params]
        for p in self._params:
            p.grad = None
        for key in self.counts:
            self.counts[key] += 1
        average_(grads)
        return loss, None, grads

    def _fisher_squares(self, closure: Closure, rng: RngSnapshot | None, what: str,
                        outputs: Any = None) -> list[Tensor]:
        """Squared gradient of the loss on labels sampled from the model's predictions (one backward).

        `outputs`: the step's own forward, its graph kept (a backward through the same forward, no
        second one); otherwise the forward is replayed on θ with the step's RNG state."""
        if outputs is None:
            assert rng is not None
            rng.restore()
            with frozen_batchnorm(self._batchnorms):
                _, outputs = self._forward(closure)
        logits = logits_of(outputs, what)
        flat = logits.reshape(-1, logits.shape[-1])
        probs = torch.softmax(flat.detach().float(), dim=-1)  # sampled where it lies: no host copy
        if self.loss_scale.scaling:  # fp16 logits may overflow: sample anyway, the gradient check skips the step
            probs = probs.nan_to_num(1.0, 1.0, 0.0)
        labels = sample_labels(probs, self._label_generator(probs.device))
        grads = self._grad(F.cross_entropy(flat.float(), labels), self._params)  # fp32 loss: scalable
        torch._foreach_mul_(grads, grads)  # the gradients are this pass's own: squared where they lie
        return grads

    def _label_generator(self, device: torch.device) -> torch.Generator | None:
        """The label-sampling generator on `device`: each device's is seeded 0 and saved in `state_dict`.
        None on the meta device, which holds shapes and no RNG (tests run steps there to catch host reads)."""
        if device.type == "cpu":
            return self._generator
        if device.type == "meta":
            return None
        key = str(device)
        if key not in self._device_generators:
            self._device_generators[key] = torch.Generator(device=device).manual_seed(0)
        return self._device_generators[key]

    # ------------------------------------------------------------------ parts
    def _preconditioned(self, grads: list[Tensor], closure: Closure, rng: RngSnapshot) -> list[Tensor]:
        """P⁻¹g on the perturbed scope (identity for preconditioner 'none')."""
        kind, hp = self.hparams["preconditioner"], self.hparams
        if kind == "none":
            return grads
        scope = self._scope_params
        if kind == "adam":
            return apply_inverse(grads, adam_second_moment(self.base, scope), hp["precond_eps"])
        for p in scope:  # allocated once (setdefault would build, and fill, a zero tensor every step)
            if "precond_v" not in self.state[p]:
                self.state[p]["precond_v"] = torch.zeros_like(p)
        stats = [self.state[p]["precond_v"] for p in scope]
        # like `adam`, P comes from the previous steps' statistics: this step's square joins afterwards
        correction = 1.0 - hp["precond_beta"] ** self._precond_steps
        previous = torch._foreach_div(stats, correction) if self._precond_steps else None
        out = apply_inverse(grads, previous, hp["precond_eps"])
        if kind == "ema_sq":
            squares = torch._foreach_mul(grads, grads)
        else:  # one sampled-label pass per step, restricted to the perturbed scope
            fisher = self._fisher_squares(closure, rng, "preconditioner 'fisher'")
            squares = [fisher[i] for i in self._scope]
        update_ema(stats, squares, hp["precond_beta"])
        self._precond_steps += 1
        return out

    def scheduled_rho(self) -> float:
        """ρ of the next step: rho · s(t/T) under rho_schedule; 0 for methods that do not perturb."""
        hp = self.hparams
        if self.info.preset.perturbation == "none":
            return 0.0
        return hp["rho"] * schedule_factor(hp["rho_schedule"], self._step, hp["total_steps"])

    def _perturbed_grads(self, closure: Closure, grads: list[Tensor], output_grad: Tensor | None,
                         rng: RngSnapshot) -> list[Tensor]:
        hp = self.hparams
        scope = self._scope_params
        scope_grads = [grads[i] for i in self._scope]
        rho = self.scheduled_rho()
        eps = perturbation(self.info.preset.perturbation, scope, scope_grads,
                           self._preconditioned(scope_grads, closure, rng), rho=rho,
                           asam_eta=hp.get("asam_eta", 0.0), normalize_by_grad=hp["precond_normalize"] == "grad",
                           scaled=self._asam_scaled)
        saved = self._copy_of("perturb_restore", scope)
        with torch.no_grad():
            torch._foreach_add_(scope, eps)
        rng.restore()
        try:
            with frozen_batchnorm(self._batchnorms):
                if output_grad is None:
                    perturbed = self._loss_grads(closure)[2]
                else:  # functional: J(θ+ε)ᵀ · ∂ℓ/∂z(θ)
                    _, outputs = self._forward(closure)
                    perturbed = self._grad(logits_of(outputs, "Functional-SAM"), self._params, output_grad)
        finally:  # θ comes back even when an fp16 pass overflowed
            with torch.no_grad():
                torch._foreach_copy_(scope, saved)
        return perturbed

    def _balance(self, grads: list[Tensor]) -> None:
        hp = self.hparams
        mu = hp["mu0"] * schedule_factor(hp["schedule"], self._step, hp["total_steps"])
        pair_grads = [(grads[i], grads[j]) for i, j in self._pair_index]
        lrs = [self.param_groups[self._group[i]]["lr"] for i, _ in self._pair_index]
        norm = global_norm(grads) if hp["bar_norm"] == "global" else None
        scales = None
        if hp["base"] == "adamw" and hp["bar_scale"] == "adam":
            v = adam_second_moment(self.base, [t for pair in self._pairs for t in pair])
            if v is not None:  # before AdamW's first step its update is ±lr: ratio 1 / |g| per coordinate
                scales = adam_ratio(pair_grads, v, hp["eps"])  # every pair's ratio at once
        balance(self.info.preset.balancer, self._pairs, pair_grads, lrs, mu, norm, scales)

    def _estimate_mask(self, grads: list[Tensor], closure: Closure, rng: RngSnapshot | None,
                       outputs: Any = None) -> None:
        kind = self.hparams["curvature"]
        if kind == "fisher":
            curvature = self._fisher_squares(closure, rng, "curvature 'fisher'", outputs)
        elif kind == "adam":
            curvature = adam_second_moment(self.base, self._params) or torch._foreach_mul(grads, grads)
        else:
            curvature = torch._foreach_mul(grads, grads)
        dtypes = {p.dtype for p in self._params}  # one conversion for all when θ has one dtype
        masks = flat_mask(curvature, self.hparams["gamma"], ties=self.hparams["ire_ties"],
                          dtype=dtypes.pop() if len(dtypes) == 1 else torch.bool)
        for p, mask in zip(self._params, masks, strict=True):
            self.state[p]["ire_mask"] = mask.to(p.dtype)  # stored as 0/1 in θ's dtype
        self._boost = None
        self._masks = None  # re-read from the state: θ's dtype per parameter when θ mixes dtypes

    def _is_estimate_step(self) -> bool:
        hp = self.hparams
        return self.info.preset.ire and self._step >= self._ire_warmup and \
            (self._step - self._ire_warmup) % hp["ire_interval"] == 0

    # ------------------------------------------------------------------ the step
    def step(self, closure: Closure | None = None) -> Tensor:  # type: ignore[override]
        """One full step on the closure's batch; returns the first-pass loss (detached).

        Under fp16, a pass with a non-finite gradient skips the step (θ and the state unchanged) and
        lowers the loss scale.
        """
        if closure is None:
            raise ConfigError(f"{self.method}: step() needs a closure returning (loss, outputs)")
        self._first_loss: Tensor | None = None
        try:
            self._step_on(closure)
        except NonFiniteGradient:
            self.loss_scale.update(False)
        else:
            self.loss_scale.update(True)
        return self._first_loss.detach()

    def _step_on(self, closure: Closure) -> None:
        preset, hp = self.info.preset, self.hparams
        perturbing = preset.perturbation != "none"
        estimate = self._is_estimate_step()
        fisher_estimate = estimate and hp["curvature"] == "fisher"
        # IRE's Fisher pass reuses the step's forward when θ has not moved since (no perturbation):
        # one more backward through the same graph instead of a replayed forward and backward
        # (fisher curvature implies closure_style 'outputs', checked at build)
        reuse_forward = fisher_estimate and not perturbing
        replays = perturbing or (fisher_estimate and not reuse_forward)
        rng = RngSnapshot(self._cuda) if replays else None

        if preset.perturbation == "functional":
            loss, outputs = self._forward(closure)
            logits = logits_of(outputs, "Functional-SAM")
            *grads, output_grad = self._grad(loss, [*self._params, logits])
            output_grad = output_grad.detach()
        else:
            _, outputs, grads = self._loss_grads(closure, keep_graph=reuse_forward)
            output_grad = None
        final = self._perturbed_grads(closure, grads, output_grad, rng) if perturbing else grads

        if preset.balancer != "none":
            self._balance(grads)
        if estimate:
            self._estimate_mask(grads, closure, rng, outputs if reuse_forward else None)
        for p, g in zip(self._params, final, strict=True):
            p.grad = g
        if hp["grad_clip"] is not None:
            torch.nn.utils.clip_grad_norm_(self._params, hp["grad_clip"])

        self._lr_warm = self._lr_warm or self._lr_warmup_over()
        boosting = preset.ire and self._lr_warm and "ire_mask" in self.state[self._params[0]]
        # Δ = −lr · (momentum buffer): torch's SGD updates an existing buffer in place, so the buffers
        # read now hold the step's direction afterwards, and θ need not be copied
        dense = boosting and not any(g.is_sparse for g in final)
        directions = heavy_ball_directions(self.base, self._params) if dense else None
        # fused step and boost (factors 1 + κ·mask): only while κ holds, and for fp32/fp64 θ
        fusing = dense and self._fusable and not self._kappas_move()
        adamw = adamw_states(self.base, self._params) if fusing and directions is None else None
        if directions is not None:
            kappas = tuple(self._kappas())
            if fusing:
                boosted_heavy_ball_step(self.param_groups, self._group_index, self._params, directions,
                                        self._boost_tensors("factors", kappas))  # one pass over θ
            else:  # κ_t moves every step (factors would be rebuilt each time), or θ is in 16 bits
                self.base.step()
                boost_along(self._params, directions, self._ire_masks(),
                            [-self.param_groups[k]["lr"] * kappa for k, kappa in zip(self._group, kappas, strict=True)])
        elif adamw is not None:
            boosted_adamw_step(self.param_groups, self._group_index, self._params, adamw,
                               self._boost_tensors("factors", tuple(self._kappas())))
        elif boosting:
            theta_old = self._copy_of("ire_theta_old", self._params)
            self.base.step()
            boost(self._params, theta_old, self._boost_tensors("lerp", tuple(self._kappas())))
        else:
            self.base.step()
        self._last_lr = [g["lr"] for g in self.param_groups]
        self._step += 1

    def _lr_warmup_over(self) -> bool:
        """Whether the lr warm-up is over: every group's lr has reached its configured peak or stopped rising."""
        last = self._last_lr or [0.0] * len(self.param_groups)
        return all(g["lr"] >= peak * (1 - 1e-9) or (self._last_lr and g["lr"] <= prev)
                   for g, peak, prev in zip(self.param_groups, self._peak_lr, last, strict=True))

    def _copy_of(self, name: str, tensors: list[Tensor]) -> list[Tensor]:
        """`tensors` copied into the buffer `name`, kept across steps: no allocation on the hot path."""
        buffer = self._buffers.get(name)
        if buffer is None:
            buffer = self._buffers[name] = [t.detach().clone() for t in tensors]
        else:
            with torch.no_grad():  # a plain copy: the buffer must not join the autograd graph
                torch._foreach_copy_(buffer, tensors)
        return buffer

    def _ire_masks(self) -> list[Tensor]:
        """The masks in θ's order (kept from the estimate; read back from the state after a load)."""
        if self._masks is None:
            self._masks = [self.state[p]["ire_mask"] for p in self._params]
        return self._masks

    def _boost_tensors(self, path: str, kappas: tuple[float, ...]) -> list[Tensor]:
        """−κ·mask for the lerp (`boost`) or 1 + κ·mask for the fused steps ("factors"), cached until the
        mask or κ changes."""
        if self._boost is None or self._boost[:2] != (path, kappas):
            build = boost_factors if path == "factors" else boost_weights
            self._boost = (path, kappas, build(self._ire_masks(), kappas))
        return self._boost[2]

    def _kappas_move(self) -> bool:
        """Whether κ_t follows the lr (kappa_decay) and the lr moved since the last step."""
        return bool(self.hparams["kappa_decay"]) and self._last_lr != [g["lr"] for g in self.param_groups]

    def _kappas(self) -> list[float]:
        """κ per parameter; with kappa_decay, κ · η_t / η_peak, η_peak the group's configured lr."""
        kappa = self.hparams["kappa"]
        if not self.hparams["kappa_decay"]:
            return [kappa] * len(self._params)
        ratios = [g["lr"] / peak for g, peak in zip(self.param_groups, self._peak_lr, strict=True)]
        return [kappa * ratios[k] for k in self._group]

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:  # type: ignore[override]
        """Base optimizer state plus everything the method keeps: masks, statistics, counters, RNG."""
        return {
            "method": self.method,
            "hparams": dict(self.hparams),
            "base": self.base.state_dict(),
            "step": self._step,
            "precond_steps": self._precond_steps,
            "peak_lr": list(self._peak_lr),
            "lr_warm": self._lr_warm,
            "last_lr": list(self._last_lr),
            "counts": dict(self.counts),
            "loss_scale": self.loss_scale.state_dict(),
            "generator": self._generator.get_state(),
            "device_generators": {k: g.get_state() for k, g in self._device_generators.items()},
            "per_param": {i: {k: v.clone() for k, v in self.state[p].items()}
                          for i, p in enumerate(self._params) if self.state.get(p)},
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:  # type: ignore[override]
        """Restore a state saved by `state_dict` of the same method on the same parameters."""
        if state_dict.get("method") != self.method:
            raise ConfigError(f"state_dict is for method {state_dict.get('method')!r}, not {self.method!r}")
        self.base.load_state_dict(state_dict["base"])
        self.param_groups = self.base.param_groups
        self._step = state_dict["step"]
        self._precond_steps = state_dict["precond_steps"]
        self._peak_lr = list(state_dict["peak_lr"])
        self._lr_warm = state_dict["lr_warm"]
        self._last_lr = list(state_dict["last_lr"])
        self.counts = dict(state_dict["counts"])
        if "loss_scale" in state_dict:
            self.loss_scale.load_state_dict(state_dict["loss_scale"])
        self._generator.set_state(state_dict["generator"])
        for key, state in state_dict.get("device_generators", {}).items():
            self._label_generator(torch.device(key)).set_state(state)
        self.state.clear()
        self._boost = None
        self._masks = None
        for i, entries in state_dict["per_param"].items():
            p = self._params[int(i)]
            self.state[p] = {k: v.to(p.device).clone() for k, v in entries.items()}
