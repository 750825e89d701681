"""IRE's boost fused with the base step: heavy-ball SGD and AdamW in one pass, the others by copy and lerp.

After a base step Δ = θ_new − θ_old, IRE sets θ ← θ_new + κ · mask ⊙ Δ (`ire.py`). Heavy-ball SGD boosts
from its momentum buffer (Δ = −lr·b), so no copy of θ is taken: while κ holds, SGD's step and the boost
are one pass, θ ← θ − lr·(1 + κ·mask) ⊙ b (the factors 1 + κ·mask cost one θ-sized tensor, so only for
fp32/fp64 θ); when κ moves every step (kappa_decay under an lr schedule) or θ is in 16 bits, torch's step
runs and the boost adds −lr·κ_t · mask ⊙ b with the 0/1 masks, rebuilding nothing. AdamW (plain: no
amsgrad) fuses the same way while κ holds, θ + (1 + κ·mask) ⊙ Δ with Δ its decoupled decay and Adam step,
in foreach ops. Other bases copy θ before the step and lerp after it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor


def boost_weights(masks: Sequence[Tensor], kappas: Sequence[float]) -> list[Tensor]:
    """−κ · mask per parameter: the weights `boost` takes (rebuilt only when κ or the mask changes;
    `boost_along` needs none)."""
    if len(set(kappas)) == 1:
        return list(torch._foreach_mul(list(masks), -kappas[0]))
    return [m * -kappa for m, kappa in zip(masks, kappas, strict=True)]


@torch.no_grad()
def boost(params: Sequence[Tensor], previous: Sequence[Tensor], weights: Sequence[Tensor]) -> None:
    """θ ← θ + κ · mask ⊙ (θ − θ_old) in place, as one fused pass: lerp(θ, θ_old, −κ · mask)."""
    torch._foreach_lerp_(list(params), list(previous), list(weights))


def boost_factors(masks: Sequence[Tensor], kappas: Sequence[float]) -> list[Tensor]:
    """1 + κ · mask per parameter: the factors `boosted_heavy_ball_step` takes (rebuilt only when κ or
    the mask changes)."""
    if len(set(kappas)) == 1:
        factors = torch._foreach_mul(list(masks), kappas[0])
        torch._foreach_add_(factors, 1.0)  # in place: one θ-sized allocation, not two
        return list(factors)
    return [(m * kappa).add_(1.0) for m, kappa in zip(masks, kappas, strict=True)]


def _group_lists(groups: Sequence[Mapping[str, Any]], index: Sequence[Sequence[int]], params: Sequence[Tensor],
                 factors: Sequence[Tensor]) -> Iterator[tuple[Mapping[str, Any], list[int], list[Tensor],
                                                             list[Tensor], list[Tensor]]]:
    """Per non-empty group: the group, its positions in `params`, and its θ, gradients and factors as
    lists, the shape the fused steps' foreach calls take."""
    for group, positions in zip(groups, index, strict=True):
        if positions:
            yield (group, list(positions), [params[i] for i in positions], [params[i].grad for i in positions],
                   [factors[i] for i in positions])


@torch.no_grad()
def boosted_heavy_ball_step(groups: Sequence[Mapping[str, Any]], index: Sequence[Sequence[int]],
                            params: Sequence[Tensor], buffers: Sequence[Tensor], factors: Sequence[Tensor]) -> None:
    """torch's heavy-ball SGD step followed by IRE's boost, as one pass over θ.

    For each group: b ← μ·b + (1 − dampening)·(g + wd·θ), as torch.optim.SGD updates its buffer in place,
    then θ ← θ − lr·(1 + κ·mask) ⊙ b, which is SGD's θ − lr·b followed by θ + κ·mask ⊙ Δ with Δ = −lr·b.
    `index[k]` lists the positions in `params` (each with its gradient set) of group k's trainable
    parameters. Only for what `heavy_ball_directions` accepts: heavy ball, no Nesterov, no maximize.
    """
    for group, positions, thetas, grads, fs in _group_lists(groups, index, params, factors):
        bufs = [buffers[i] for i in positions]
        if group["weight_decay"]:
            grads = torch._foreach_add(grads, thetas, alpha=group["weight_decay"])
        torch._foreach_mul_(bufs, group["momentum"])
        torch._foreach_add_(bufs, grads, alpha=1 - group["dampening"])
        torch._foreach_addcmul_(thetas, fs, bufs, value=-group["lr"])


def adamw_states(base: torch.optim.Optimizer, params: Sequence[Tensor]) -> list[dict[str, Any]] | None:
    """AdamW's per-parameter state (step, exp_avg, exp_avg_sq) for `boosted_adamw_step`, or None when the
    fused step does not apply: another base, no state yet, or a variant it does not implement (amsgrad,
    maximize, capturable, differentiable, fused, a tensor hyperparameter, complex θ)."""
    if type(base) is not torch.optim.AdamW or not all(
            not g["amsgrad"] and not g.get("maximize", False) and not g.get("capturable", False)
            and not g.get("differentiable", False) and not g.get("fused", False)
            and all(isinstance(g[k], (int, float)) for k in ("lr", "eps", "weight_decay"))
            and all(isinstance(b, (int, float)) for b in g["betas"]) for g in base.param_groups):
        return None
    states = [base.state.get(p) for p in params]
    if any(not s or "exp_avg_sq" not in s or torch.is_complex(p) for s, p in zip(states, params, strict=True)):
        return None
    return states  # type: ignore[return-value]


@torch.no_grad()
def boosted_adamw_step(groups: Sequence[Mapping[str, Any]], index: Sequence[Sequence[int]],
                       params: Sequence[Tensor], states: Sequence[Mapping[str, Tensor]],
                       factors: Sequence[Tensor]) -> None:
    """torch's AdamW step followed by IRE's boost, as one step of foreach ops.

    AdamW moves θ by Δ = −lr·wd·θ − (lr / bc1) · m / (√v / √bc2 + ε), with m and v updated as torch
    updates them (and its `step` counters too, so torch's own step can take over at any time). The boost
    θ + κ·mask ⊙ Δ then makes the step θ + (1 + κ·mask) ⊙ Δ: θ ← θ − lr·wd·F⊙θ, θ ← θ − (lr / bc1)·m / (denom/F)
    with F = 1 + κ·mask. No copy of θ, and torch's per-parameter CPU loop becomes a few foreach calls.
    `index[k]` lists the positions in `params` of group k's trainable parameters (each with its gradient).
    Only for what `adamw_states` accepts.
    """
    from torch.optim.optimizer import _get_value  # reads the host-side step counter, as torch's AdamW does

    one = torch.tensor(1.0)
    for group, positions, thetas, grads, fs in _group_lists(groups, index, params, factors):
        exp_avgs = [states[i]["exp_avg"] for i in positions]
        exp_avg_sqs = [states[i]["exp_avg_sq"] for i in positions]
        steps = [states[i]["step"] for i in positions]
        lr, (beta1, beta2), eps, decay = group["lr"], group["betas"], group["eps"], group["weight_decay"]
        torch._foreach_add_(steps, one)  # the counters live on the host (not capturable)
        if decay:
            torch._foreach_addcmul_(thetas, fs, thetas, value=-lr * decay)
        torch._foreach_lerp_(exp_avgs, grads, 1 - beta1)
        torch._foreach_mul_(exp_avg_sqs, beta2)
        torch._foreach_addcmul_(exp_avg_sqs, grads, grads, value=1 - beta2)
        counts = [_get_value(s) for s in steps]
        denoms = torch._foreach_sqrt(exp_avg_sqs)
        torch._foreach_div_(denoms, [(1 - beta2 ** n) ** 0.5 for n in counts])
        torch._foreach_add_(denoms, eps)
        torch._foreach_div_(denoms, fs)  # F·m/denom as m/(denom/F): one θ-sized temporary, as torch's own
        torch._foreach_addcdiv_(thetas, exp_avgs, denoms, [-lr / (1 - beta1 ** n) for n in counts])


def heavy_ball_directions(base: torch.optim.Optimizer, params: Sequence[Tensor]) -> list[Tensor] | None:
    """The momentum buffers b with Δ = −lr · b for `base`'s next step, or None when there are none yet.

    torch's SGD with heavy-ball momentum (not Nesterov, not maximize) moves θ by exactly −lr · b,
    b its momentum buffer after the step (updated in place), whatever the dampening or weight decay.
    IRE then boosts from b, with no copy of θ before the step (one pass over θ instead of two)."""
    if type(base) is not torch.optim.SGD or not all(
            g["momentum"] > 0 and not g["nesterov"] and not g.get("maximize", False)
            and not g.get("differentiable", False) and not g.get("fused", False)
            and isinstance(g["lr"], (int, float)) for g in base.param_groups):  # a tensor lr: the copy path
        return None
    buffers = [base.state[p].get("momentum_buffer") for p in params]
    return None if any(b is None for b in buffers) else buffers


@torch.no_grad()
def boost_along(params: Sequence[Tensor], directions: Sequence[Tensor], masks: Sequence[Tensor],
                scales: Sequence[float]) -> None:
    """θ ← θ + κ · mask ⊙ Δ with Δ = −lr · b per parameter: θ += (−lr · κ) · mask ⊙ b, one call per
    distinct −lr · κ. The masks enter as they are, so nothing is rebuilt when κ or the lr moves."""
    distinct = dict.fromkeys(scales)
    if len(distinct) == 1:
        torch._foreach_addcmul_(list(params), list(masks), list(directions), value=scales[0])
        return
    for scale in distinct:
        index = [i for i, each in enumerate(scales) if each == scale]
        torch._foreach_addcmul_([params[i] for i in index], [masks[i] for i in index],
                                [directions[i] for i in index], value=scale)


def step_and_boost(base: torch.optim.Optimizer, index: Sequence[Sequence[int]], params: Sequence[Tensor], *,
                   fusing: bool, factors: Callable[[], list[Tensor]], masks: Callable[[], list[Tensor]],
                   scales: Callable[[], list[float]]) -> bool:
    """`base`'s step and IRE's boost with no copy of θ, where `base` allows; False when it does not (nothing done).

    Heavy-ball SGD boosts from its momentum buffer: fused with the step while κ holds (`fusing`: the
    factors 1 + κ·mask are not rebuilt every step, θ in fp32/fp64), else torch's step then `boost_along`
    with −lr·κ_t (`scales`). Plain AdamW fuses while κ holds. `index[k]`: group k's positions in `params`.
    """
    directions = heavy_ball_directions(base, params)
    if directions is not None and fusing:
        boosted_heavy_ball_step(base.param_groups, index, params, directions, factors())
    elif directions is not None:
        base.step()
        boost_along(params, directions, masks(), scales())
    else:
        adamw = adamw_states(base, params) if fusing else None
        if adamw is None:
            return False
        boosted_adamw_step(base.param_groups, index, params, adamw, factors())
    return True
