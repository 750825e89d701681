"""BAR: balance each scale-invariant pair from the one gradient at hand (docs/METHODS.md, "Balancer").

Li, Zhang and He, NeurIPS 2024 (arXiv 2410.14802), Algorithms 2 (nBAR) and 3 (oBAR). At step t, with
the gradient g_x, g_y already taken, each pair (x, y) (LoRA's lora_B and lora_A of one module; norms
are Frobenius norms of the whole matrices) is rescaled on its own, before the base step:

    nBAR: if ‖g_x‖ ≥ ‖g_y‖:  x ← (1 + α_t η_t) x,  y ← (1 − α_t η_t) y;  else the reverse
    oBAR: if ‖x‖ ≥ ‖y‖:      x ← (1 − α_t η_t) x,  y ← (1 + α_t η_t) y;  else the reverse

α_t = μ0 · s(t/T) (t = 0 at the first step), η_t the current lr of the pair's group (its x's), so an lr
scheduler or a warm-up changes the rescale. The base step then takes the gradient from before the
rescale, as weight decay is applied. The sign follows SAM's balancedness drift (Thm 2 for nBAR, Thm 3
and Lemma 2 for oBAR); the magnitude is fixed.

`bar_rule: drift` is a rule of ours, not the paper's: a magnitude matched to SAM's drift, with its
`bar_norm` and `bar_scale` (`_bar_drift`). Either rule is a fixed number of operators whatever the
number of pairs (one foreach norm, a `torch.where` over per-pair vectors, two foreach scalings), and
never reads a value back to the host.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from methods._bar_drift import adam_ratio, drift_balance, norms
from methods._engine import Passes
from methods._errors import ConfigError
from methods._hparams import SCHEDULES, HParam, number_in, one_of, optional, schedule_factor
from methods._parts import Part, part
from methods.precondition import adam_second_moment
from methods.sam import global_norm

DRIFT_ONLY = ("bar_norm", "bar_scale")  # the drift rule's knobs: no meaning under the paper's rule
BALANCING: Mapping[str, HParam] = {
    "mu0": HParam(0.5, number_in(0.0), "balancer strength alpha_0 at step 0 (the paper's grids: 0.2-2)"),
    "schedule": HParam("constant", one_of(*SCHEDULES), "schedule of alpha_t = mu0 s(t/T) over total_steps"),
    "bar_rule": HParam("paper", one_of("paper", "drift"),
                       "paper: Algorithms 2/3 of Li et al. (sign rule, factor 1 +- alpha_t lr_t); "
                       "drift: ours, a magnitude matched to SAM's drift (takes bar_norm, bar_scale)"),
    "bar_norm": HParam(None, optional(one_of("global", "pair")),
                       "bar_rule drift only: ||g|| global over all parameters (SAM's; unset) or per pair"),
    "bar_scale": HParam(None, optional(one_of("adam", "none")),
                        "bar_rule drift only, AdamW base: scale c by ||g/(sqrt(v)+eps)|| / ||g|| per pair "
                        "(adam; unset) or not (none)"),
}


def _signs(kind: str, xs: Sequence[Tensor], ys: Sequence[Tensor], gxs: Sequence[Tensor],
           gys: Sequence[Tensor]) -> Tensor:
    """Per pair, +1 where x is scaled by 1 + α_t η_t (‖g_x‖ ≥ ‖g_y‖ for nBAR, not ‖x‖ ≥ ‖y‖ for oBAR), else −1;
    in the norms' dtype (float32, or float64 where a tensor is), exactly ±1."""
    both = norms([*gxs, *gys] if kind == "nbar" else [*xs, *ys])  # one foreach norm over every pair
    first, second = both.view(2, -1)
    test = first >= second  # line 4 of either algorithm, ties included
    grow_x = test if kind == "nbar" else torch.logical_not(test)
    return grow_x.to(both.dtype) * 2.0 - 1.0


@torch.no_grad()
def balance(kind: str, pairs: Sequence[tuple[Tensor, Tensor]], grads: Sequence[tuple[Tensor, Tensor]],
            lrs: Sequence[float], alpha: float) -> None:
    """One step of Algorithm 2 (`nbar`) or 3 (`obar`) in place on every pair; `lrs` holds η_t of each pair."""
    if not pairs:
        return
    xs, ys = [x for x, _ in pairs], [y for _, y in pairs]
    sign = _signs(kind, xs, ys, [g for g, _ in grads], [g for _, g in grads])
    # α_t η_t: one host number, unless the pairs' parameter groups have different learning rates
    step = sign * (alpha * lrs[0] if len(set(lrs)) == 1 else sign.new_tensor([alpha * lr for lr in lrs]))
    torch._foreach_mul_(xs, (1.0 + step).unbind())
    torch._foreach_mul_(ys, (1.0 - step).unbind())


class Balancer(Part):
    """BAR's step on the optimizer's pairs, from the first gradient g, before the base step."""

    hparams, reads = BALANCING, frozenset({"total_steps"})

    @classmethod
    def check(cls, method: str, hp: Mapping[str, Any]) -> None:
        given = [k for k in DRIFT_ONLY if hp.get(k) is not None]
        if hp["bar_rule"] == "paper" and given:
            raise ConfigError(
                f"{given[0]} belongs to bar_rule: drift, sharptune's own rule, which {method} used before it "
                f"followed the paper's Algorithm {2 if method == 'nbar' else 3}; set bar_rule: drift to keep it, "
                f"or drop {given[0]}")

    def __init__(self, passes: Passes, scope: Sequence[int]) -> None:
        self.passes, self.pairs, self.index = passes, passes.pairs, passes.pair_index
        self.groups = [passes.groups[i] for i, _ in self.index]  # η of each pair: its x's group's lr

    def balance(self, grads: list[Tensor]) -> None:
        passes, hp = self.passes, self.passes.hparams
        alpha = hp["mu0"] * schedule_factor(hp["schedule"], passes.step, hp["total_steps"])
        pair_grads = [(grads[i], grads[j]) for i, j in self.index]
        lrs = [passes.param_groups[k]["lr"] for k in self.groups]
        if hp["bar_rule"] == "paper":
            balance(self.name, self.pairs, pair_grads, lrs, alpha)
        else:
            self._drift(grads, pair_grads, lrs, alpha)

    def _drift(self, grads: list[Tensor], pair_grads: list[tuple[Tensor, Tensor]], lrs: list[float],
               mu: float) -> None:
        """`bar_rule: drift` (ours): SAM's drift as the magnitude (`_bar_drift`)."""
        hp = self.passes.hparams
        norm = None if hp["bar_norm"] == "pair" else global_norm(grads)
        scales = None
        if hp["base"] == "adamw" and hp["bar_scale"] in (None, "adam"):
            v = adam_second_moment(self.passes.base, [t for pair in self.pairs for t in pair])
            if v is not None:  # before AdamW's first step its update is ±lr: ratio 1 / |g| per coordinate
                scales = adam_ratio(pair_grads, v, hp["eps"])  # every pair's ratio at once
        drift_balance(self.name, self.pairs, pair_grads, lrs, mu, norm, scales)


@part("balancer", "nbar")
class Nbar(Balancer):
    """nBAR (Algorithm 2): the sign of ‖g_x‖ − ‖g_y‖ (≥: x grows), SAM's NOP drift (Thm 2)."""


@part("balancer", "obar")
class Obar(Balancer):
    """oBAR (Algorithm 3): the sign of ‖y‖ − ‖x‖ (‖x‖ ≥ ‖y‖: x shrinks), SAM's OP drift (Thm 3)."""
