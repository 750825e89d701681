"""IRE: boost the update along the flattest coordinates (METHODS.md, "IRE").

Every K steps after the IRE warm-up a diagonal curvature h is estimated and the mask marks the
coordinates with the smallest h, one global threshold over all parameters. After each base step
Δ = θ_new − θ_old, θ ← θ_new + κ · mask ⊙ Δ.

Defaults follow the official code (wmz9/IRE-algorithm-framework):
- warm-up: IRE starts late, after a third of `total_steps` (ViT-S/ImageNet: IRE from epoch 100 of
  300; CIFAR: `IRE_start_epoch` 70 of 200); no mask and no boost before. And never a boost while the
  learning rate is still warming up (the official loop boosts only after `warmup_iters`): the lr
  warm-up lasts until every group's lr has reached its configured peak or stopped rising.
- κ decay (`kappa_decay`): κ_t = κ · η_t / η_peak with η_peak the configured lr (`prog * lr / base_lr`).
- mask ties (`ire_ties`): "exact" (default) marks exactly round(γ·p) coordinates, ties broken by
  position (stable), so the mask size never depends on ties: on the valley L = (1 + u²)v²/2 both
  curvatures reach 0 once v underflows, and a tie rule that takes both would boost v and diverge.
  "official" marks the int(γ·p) smallest plus every coordinate tied at the threshold (h ≤ h_(k)),
  as the official `update_mask` (its γ > 0.5 branch selects from the top, one coordinate more).

Cost (issue 11): on the host the mask's threshold is an exact bracketed selection in numpy; on an
accelerator, an exact radix selection on the float32 bit patterns, O(p) at device bandwidth and with no
host sync: the curvatures become order-preserving int32 keys (−0.0 = +0.0, NaN the largest, as
torch.kthvalue and numpy order them), a histogram of their high 16 bits (scatter_add_ into 65536 bins
spread over 64 copies so that tied values do not serialise on one address, in chunks of 2^24
coordinates) and its cumsum locate the threshold's bin by searchsorted, a second histogram of the low 16
bits within that bin gives the exact threshold key, and comparisons plus one running sum over the tied
coordinates make the mask; every intermediate has a fixed shape and stays on the device (torch.kthvalue
over all p coordinates as one slice runs in a single CUDA block: ~3 s on 355M parameters). The masks are
views of one tensor in θ's dtype (one conversion).

Heavy-ball SGD boosts from its momentum buffer (Δ = −lr·b), so no copy of θ is taken: while κ holds,
SGD's step and the boost are one pass, θ ← θ − lr·(1 + κ·mask) ⊙ b (the factors 1 + κ·mask cost one
θ-sized tensor, so only for fp32/fp64 θ); when κ moves every step (kappa_decay under an lr schedule) or
θ is in 16 bits, torch's step runs and the boost adds −lr·κ_t · mask ⊙ b with the 0/1 masks, rebuilding
nothing. AdamW (plain: no amsgrad) fuses the same way while κ holds, θ + (1 + κ·mask) ⊙ Δ with Δ its
decoupled decay and Adam step, in foreach ops. Other bases copy θ before the step and lerp after it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from methods import _device

START_FRACTION = 1 / 3  # official runs: IRE from epoch 100 of 300 (ViT), 70 of 200 (CIFAR)


def ire_start(hparams: Mapping[str, Any]) -> int:
    """Steps without IRE: `warmup` if set, else a third of `total_steps` (0 without a horizon)."""
    if hparams.get("warmup") is not None:
        return int(hparams["warmup"])
    total = hparams.get("total_steps")
    return int(round(START_FRACTION * total)) if total else 0


BRACKET_MIN = 20_000  # below this many values one full np.partition is as fast as the bracket
BRACKET_SAMPLE = 2_048  # values in the sample that brackets the k-th smallest


def _kth_smallest_host(values: np.ndarray, k: int) -> float:
    """The exact k-th smallest (1-based) of `values`, as np.partition gives it, 3-5x faster for large arrays.

    A strided sample's order statistics bracket the k-th value; one pass counts the values below the
    bracket and keeps the few inside it, and a partition of those few gives the answer. When the
    bracket misses (an unlucky sample, NaNs), one full partition does. The result never depends on
    the sample, only the time does.
    """
    n = values.size
    if n < BRACKET_MIN:
        return float(np.partition(values, k - 1)[k - 1])
    stride = n // BRACKET_SAMPLE
    m, q = -(-n // stride), k / n  # the sample's size, the rank's quantile
    at, margin = q * m, 4.0 * math.sqrt(m * q * (1.0 - q)) + 2.0  # the sample rank's spread, 4 standard deviations
    ranks = [max(int(at - margin), 0), min(int(at + margin) + 1, m - 1)]
    sample = np.partition(values[::stride], ranks)  # the two order statistics only, not a sort
    low, high = sample[ranks[0]], sample[ranks[1]]
    under = values < low
    below = int(np.count_nonzero(under))
    inside = np.extract(under ^ (values <= high), values)  # low <= v <= high (~30 % faster than np.compress)
    if below < k <= below + inside.size:
        return float(np.partition(inside, k - below - 1)[k - below - 1])
    return float(np.partition(values, k - 1)[k - 1])


def flat_mask(curvature: Sequence[Tensor], gamma: float, ties: str = "exact",
              dtype: torch.dtype = torch.bool) -> list[Tensor]:
    """Masks (one per parameter, 0/1 in `dtype`) of the smallest-curvature coordinates (see `ire_ties`
    above): views of one flat tensor, so the conversion to `dtype` is one operation for all of them."""
    flat = torch.cat([h.detach().reshape(-1).float() for h in curvature])
    exact = ties == "exact"
    count = int(math.floor(gamma * flat.numel() + 0.5)) if exact else int(gamma * flat.numel())
    if not count:
        chosen = torch.zeros(flat.numel(), dtype=torch.bool, device=flat.device)
    elif not _device.on_accelerator(flat):
        chosen = _chosen_on_host(flat.numpy(), count, exact)
    else:
        chosen = _chosen_on_device(flat, count, exact)
    if dtype is not torch.bool:  # through uint8: on the host torch's bool→float cast is ~7x slower
        chosen = chosen.view(torch.uint8).to(dtype)
    return [m.view_as(h) for m, h in zip(chosen.split([h.numel() for h in curvature]), curvature, strict=True)]


RADIX_BITS = 16  # two passes of 65536 bins each cover the 32-bit keys
RADIX_BINS = 1 << RADIX_BITS
RADIX_CHUNK = 1 << 24  # coordinates per scatter: bounds the int64 index temporaries (128 MiB) on a large model
_INT32_MAX = (1 << 31) - 1


def _order_keys(flat: Tensor) -> Tensor:
    """int32 keys of float32 `flat` whose integer order is the float order, so a radix selection on the
    keys selects on the values: sign bit kept and the other bits flipped for negatives (larger magnitude,
    smaller key). −0.0 gets +0.0's key (they compare equal, so ties by position decide), and every NaN
    the largest key, whatever its sign and payload (torch.kthvalue and numpy order NaN last). Integer
    ops only: no float mode (flush-to-zero) can merge values."""
    bits = flat.view(torch.int32)
    keys = bits ^ ((bits >> 31) & _INT32_MAX)
    keys.masked_fill_(keys == -1, 0)  # −0.0 (bits 0x80000000) flips to −1
    return keys.masked_fill_(flat.isnan(), _INT32_MAX)


RADIX_SPREAD = 64  # copies of each histogram: consecutive coordinates count into different copies


def _histogram(keys: Tensor, high: Tensor | None = None) -> Tensor:
    """Counts (int32, RADIX_BINS) of the keys' high 16 bits, or, given `high` (a 0-dim int32 high half),
    of the low 16 bits of the keys whose high half is `high`. scatter_add_ into a fixed-size output:
    no host sync (torch.bincount reads its maximum to size its output), chunked so that the int64
    index it needs never spans all p coordinates. The second pass scatters a 0/1 weight to the low
    bits' bin rather than the others to one dump bin.

    Tied curvatures (the exact zeros of unused embedding rows: half of a model's coordinates, maybe)
    all land in one bin, and atomics on one address serialise. Coordinate i counts into copy i mod
    RADIX_SPREAD of the histogram instead, so a warp's 32 lanes never share an address; the copies are
    summed at the end (RADIX_SPREAD x 256 KiB)."""
    hist = torch.zeros(RADIX_SPREAD * RADIX_BINS, dtype=torch.int32, device=keys.device)
    size = min(RADIX_CHUNK, keys.numel())
    ones = torch.ones(1, dtype=torch.int32, device=keys.device).expand(size)
    spread = (torch.arange(size, device=keys.device) % RADIX_SPREAD) * RADIX_BINS  # int64: the copy's offset
    for part in keys.split(RADIX_CHUNK):
        offset = spread[:part.numel()]
        if high is None:
            hist.scatter_add_(0, offset + ((part >> RADIX_BITS) + RADIX_BINS // 2), ones[:part.numel()])
        else:
            hist.scatter_add_(0, offset + (part & (RADIX_BINS - 1)), ((part >> RADIX_BITS) == high).int())
    return hist.view(RADIX_SPREAD, RADIX_BINS).sum(0, dtype=torch.int32)


def _radix_digit(hist: Tensor, rank: int | Tensor) -> tuple[Tensor, Tensor]:
    """The bin (int64, shape (1,)) holding the `rank`-th smallest (1-based) of what `hist` counts, and
    how many lie in the bins below it, found on the device by searchsorted on the running counts."""
    running = hist.cumsum(0)  # int64
    digit = torch.searchsorted(running, rank).reshape(1)  # the first bin whose running count reaches `rank`
    return digit, (running - hist).gather(0, digit)


def _kth_key(keys: Tensor, count: int) -> tuple[Tensor, Tensor]:
    """The exact `count`-th smallest key (0-dim int32) and how many keys are smaller (0-dim int32): two
    radix passes of 16 bits, each a histogram over all keys, with every intermediate on the device."""
    high, below_high = _radix_digit(_histogram(keys), count)
    high = (high - RADIX_BINS // 2).to(torch.int32)  # the high half as the signed shift gives it
    low, below_low = _radix_digit(_histogram(keys, high.reshape(())), count - below_high)
    threshold = (high.long() << RADIX_BITS) | low  # int64: the sign extends from the high half
    return threshold.to(torch.int32).reshape(()), (below_high + below_low).to(torch.int32).reshape(())


def _chosen_on_device(flat: Tensor, count: int, exact: bool) -> Tensor:
    """The selection `_chosen_on_host` makes, O(p) and without a host sync or a sort: everything below the
    `count`-th smallest, then (exact) ties by position up to `count`, or (official) every tie."""
    keys = _order_keys(flat)
    threshold, below = _kth_key(keys, count)
    if not exact:
        return keys <= threshold
    tied = keys == threshold
    return (keys < threshold) | (tied & (tied.cumsum(0, dtype=torch.int32) <= count - below))


def _chosen_on_host(values: np.ndarray, count: int, exact: bool) -> Tensor:
    """The same selection as on the device, in numpy (its comparisons are several times faster than
    torch's on the host); reading a count is free here, so the running sum over all p coordinates is
    needed only when ties straddle the threshold."""
    threshold = _kth_smallest_host(values, count)
    if math.isnan(threshold):  # NaN sorts last, as on the device: every number, then NaNs as ties
        chosen, tied = ~np.isnan(values), np.flatnonzero(np.isnan(values))
        chosen[tied if not exact else tied[:count - int(np.count_nonzero(chosen))]] = True
        return torch.from_numpy(chosen)
    chosen = values <= threshold
    surplus = int(np.count_nonzero(chosen)) - count if exact else 0
    if surplus:  # tied coordinates beyond the count: drop the last ones by position
        tied = np.flatnonzero(values == threshold)
        chosen[tied[len(tied) - surplus:]] = False
    return torch.from_numpy(chosen)


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
