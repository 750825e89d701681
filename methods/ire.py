"""IRE: boost the update along the flattest coordinates (docs/METHODS.md, "IRE").

Every K steps from IRE's start a diagonal curvature h is estimated; the mask marks the fraction γ of coordinates
with the smallest h, one global threshold (`_selection`). After each base step Δ = θ_new − θ_old, θ ← θ_new + κ ·
mask ⊙ Δ (fused with the step for heavy-ball SGD and AdamW while κ holds, `_fused`; else a copy of θ and a lerp).
Defaults follow the official code (wmz9/IRE-algorithm-framework, aa6a599): `ire_start` "third" is its vision scripts
(a third of `total_steps`), "lr_warmup" its LM scripts; no boost while the lr still warms up (below its peak and
rising). `ire_ties` "official" is its `update_mask` (`_selection.official_rank`), "exact" (default) round(γp).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from methods import _fused
from methods._engine import Closure, Passes
from methods._errors import ConfigError
from methods._hparams import HParam, flag, integer_from, number_in, one_of
from methods._parts import Part, part
from methods._replay import RngSnapshot, kept_copy
from methods._selection import flat_mask
from methods.precondition import adam_second_moment

START_FRACTION, INF = 1 / 3, float("inf")  # ire_start third: the vision runs' steps without IRE; lr_warmup: not yet
BOOSTING: Mapping[str, HParam] = {
    "kappa": HParam(2.0, number_in(0.0), "boost of the flat directions"),
    "gamma": HParam(0.8, number_in(0.0, 1.0, low_open=True), "fraction of coordinates boosted"),
    "ire_interval": HParam(10, integer_from(1), "steps between curvature estimates (K)"),
    "curvature": HParam("fisher", one_of("fisher", "grad_sq", "adam"), "diagonal curvature estimate"),
    "warmup": HParam(None, integer_from(0, optional=True),
                     "steps without IRE; default a third of total_steps, as the official runs (0 without total_steps)"),
    "kappa_decay": HParam(False, flag, "kappa_t = kappa * lr_t / lr_peak, lr_peak the configured lr"),
    "ire_start": HParam("third", one_of("third", "lr_warmup"),
                        "when warmup is unset, IRE starts after a third of total_steps (the official vision scripts) "
                        "or right after the lr warm-up (lr_warmup: the official LM scripts)"),
    "ire_ties": HParam("exact", one_of("exact", "official"),
                       "mask: exactly round(gamma p), ties by position, or the official update_mask (every h <= the "
                       "int(gamma p)-th smallest for gamma <= 0.5, <= the int((1-gamma) p)-th largest above)"),
}


@part("boost", "ire")
class Ire(Part):
    """The flat-direction mask (`estimate`, every K steps) and the boosted base step (`base_step`)."""

    hparams, reads = BOOSTING, frozenset({"total_steps"})

    @classmethod
    def evals(cls, hp: Mapping[str, Any]) -> float:
        return 1.0 / hp["ire_interval"] if hp["curvature"] == "fisher" else 0.0

    @classmethod
    def forwards(cls, hp: Mapping[str, Any], perturbing: bool) -> float:
        return cls.evals(hp) if perturbing else 0.0  # unperturbed, Fisher is a backward through the step's forward

    @classmethod
    def check(cls, method: str, hp: Mapping[str, Any]) -> None:
        if hp["warmup"] is not None and hp["ire_start"] != "third":
            raise ConfigError(f"{method}: warmup and ire_start: {hp['ire_start']} both set IRE's start; drop one")
        if hp["base"] != "adamw" and hp["curvature"] == "adam":
            raise ConfigError(f"curvature 'adam' reads AdamW's second moments, but {method} uses base "
                              f"{hp['base']!r}; use curvature: fisher or grad_sq, or base: adamw")

    @classmethod
    def needs_outputs(cls, method: str, hp: Mapping[str, Any]) -> tuple[str, str] | None:
        if hp["curvature"] == "fisher":
            return f"curvature 'fisher' of {method} samples labels from the model's outputs", "curvature: grad_sq"
        return None

    def __init__(self, passes: Passes, scope: Sequence[int]) -> None:
        hp, self.passes = passes.hparams, passes
        self.start = hp["warmup"] if hp["warmup"] is not None else (
            INF if hp["ire_start"] == "lr_warmup" else round(START_FRACTION * (hp["total_steps"] or 0)))
        self.fisher = hp["curvature"] == "fisher"
        # κ decay's reference (the configured lr), whether the lr warm-up is over, each group's lr at the last step
        self.peak_lr, self.lr_warm, self.last_lr = [g["lr"] for g in passes.param_groups], False, []
        self.group = passes.groups  # param index -> param group index
        self.group_index = [[i for i, k in enumerate(self.group) if k == g] for g in range(len(passes.param_groups))]
        # the fused steps keep 1 + κ·mask in θ's dtype: exact enough in fp32/fp64 only
        self.fusable = all(p.dtype in (torch.float32, torch.float64) for p in passes.params)
        # θ before the step (copy-and-lerp boost); (path, κs, −κ·mask | 1 + κ·mask); the state's masks in θ's order
        self.theta_old: list[Tensor] | None = None
        self.boosts: tuple[str, tuple[float, ...], list[Tensor]] | None = None
        self.masks: list[Tensor] | None = None

    def estimating(self, step: int) -> bool:
        """Whether this step sets a new mask: every `ire_interval` steps from IRE's start on."""
        if self.start == INF and (self.lr_warm or self._lr_warmup_over()):
            self.start = step  # ire_start lr_warmup (the LM scripts): the lr warm-up is over
        return step >= self.start and (step - self.start) % self.passes.hparams["ire_interval"] == 0

    def estimate(self, grads: list[Tensor], closure: Closure, rng: RngSnapshot | None, outputs: Any) -> None:
        """The mask of the fraction γ of coordinates with the smallest curvature, kept in the state."""
        passes, hp = self.passes, self.passes.hparams
        adam = adam_second_moment(passes.base, passes.params) if hp["curvature"] == "adam" else None
        curvature = (passes.fisher_squares(closure, rng, "curvature 'fisher'", outputs) if hp["curvature"] == "fisher"
                     else adam or torch._foreach_mul(grads, grads))
        dtypes = {p.dtype for p in passes.params}  # one conversion for all when θ has one dtype
        masks = flat_mask(curvature, hp["gamma"], ties=hp["ire_ties"],
                          dtype=dtypes.pop() if len(dtypes) == 1 else torch.bool)
        for p, mask in zip(passes.params, masks, strict=True):
            passes.state[p]["ire_mask"] = mask.to(p.dtype)  # stored as 0/1 in θ's dtype
        self.boosts = self.masks = None

    def base_step(self, final: list[Tensor]) -> None:
        """The base step, then θ += κ · mask ⊙ Δ once a mask exists and the lr warm-up is over (fused, or by copy)."""
        passes = self.passes
        self.lr_warm = self.lr_warm or self._lr_warmup_over()
        if not self.lr_warm or "ire_mask" not in passes.state[passes.params[0]]:
            passes.base.step()
        elif any(g.is_sparse for g in final) or not _fused.step_and_boost(
                passes.base, self.group_index, passes.params, fusing=self.fusable and not self._kappas_move(),
                factors=lambda: self._boost_tensors("factors"), masks=self._masks, scales=self._scales):
            self.theta_old = kept_copy(self.theta_old, passes.params)
            passes.base.step()
            _fused.boost(passes.params, self.theta_old, self._boost_tensors("lerp"))
        self.last_lr = [g["lr"] for g in passes.param_groups]

    def _scales(self) -> list[float]:
        """−lr · κ_t per parameter: the boost along the momentum buffer (Δ = −lr · b)."""
        return [-self.passes.param_groups[k]["lr"] * kappa for k, kappa in zip(self.group, self._kappas(), strict=True)]

    def _lr_warmup_over(self) -> bool:
        """Whether every group's lr has reached its configured peak or stopped rising."""
        last = self.last_lr or [0.0] * len(self.passes.param_groups)
        return all(g["lr"] >= peak * (1 - 1e-9) or (self.last_lr and g["lr"] <= prev)
                   for g, peak, prev in zip(self.passes.param_groups, self.peak_lr, last, strict=True))

    def _masks(self) -> list[Tensor]:
        """The masks in θ's order (kept from the estimate; read back from the state after a load)."""
        self.masks = self.masks or [self.passes.state[p]["ire_mask"] for p in self.passes.params]
        return self.masks

    def _boost_tensors(self, path: str) -> list[Tensor]:
        """−κ·mask (the lerp) or 1 + κ·mask (the fused steps), cached until the mask or κ changes."""
        kappas = tuple(self._kappas())
        if self.boosts is None or self.boosts[:2] != (path, kappas):
            build = _fused.boost_factors if path == "factors" else _fused.boost_weights
            self.boosts = (path, kappas, build(self._masks(), kappas))
        return self.boosts[2]

    def _kappas_move(self) -> bool:
        """Whether κ_t follows the lr (kappa_decay) and the lr moved since the last step."""
        return bool(self.passes.hparams["kappa_decay"]) and self.last_lr != [g["lr"] for g in self.passes.param_groups]

    def _kappas(self) -> list[float]:
        """κ per parameter; with kappa_decay, κ · η_t / η_peak, η_peak the group's configured lr."""
        hp, groups = self.passes.hparams, self.passes.param_groups
        kappa, decay = hp["kappa"], hp["kappa_decay"]
        ratios = [g["lr"] / peak if decay else 1.0 for g, peak in zip(groups, self.peak_lr, strict=True)]
        return [kappa * ratios[k] for k in self.group]

    def state_dict(self) -> dict[str, Any]:
        return {"peak_lr": list(self.peak_lr), "lr_warm": self.lr_warm, "last_lr": list(self.last_lr),
                "ire_start": self.start}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.peak_lr, self.lr_warm, self.last_lr = list(state["peak_lr"]), state["lr_warm"], list(state["last_lr"])
        self.start = state.get("ire_start", self.start)
        self.boosts = self.masks = None
