"""The mask's selection: which round(γ·p) coordinates have the smallest curvature, exactly (docs/METHODS.md, "IRE").

IRE's mask (`ire.py`) needs one global k-th smallest value over all p coordinates, and the tie rule
`ire_ties` names: "exact" marks exactly round(γp) coordinates, ties broken by position; "official" marks
every h at or below the official code's threshold (`official_rank`: both of its branches).

Cost (issues 11, 25): on the host the mask's threshold is an exact bracketed selection in numpy; on an
accelerator, an exact radix selection on the float32 bit patterns, O(p) at device bandwidth and with no
host sync: the curvatures become order-preserving int32 keys (−0.0 = +0.0, NaN the largest, as
torch.kthvalue and numpy order them), a histogram of their high 16 bits (scatter_add_ into 65536 bins
spread over 64 copies so that tied values do not serialise on one address, in chunks of 2^24
coordinates) and its cumsum locate the threshold's bin by searchsorted, a second histogram of the low 16
bits within that bin gives the exact threshold key, and comparisons plus one running sum over the tied
coordinates make the mask; every intermediate has a fixed shape and stays on the device. It replaces
torch.kthvalue over all p coordinates as one slice, under which IRE cost 5-6x its base on an H200 at 355M
parameters (issue 25; the new path is unmeasured on a GPU: `benchmarks/ire_mask.py --device cuda --big`).
The masks are views of one tensor in θ's dtype (one conversion).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from methods import _device

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


def official_rank(gamma: float, p: int) -> int:
    """The ascending rank of the official threshold (`NLP/LLM/ire.py` `update_mask`, wmz9/IRE-algorithm-framework
    aa6a599), in its own arithmetic with `rank` = 1 − γ: for γ ≤ 0.5 (rank ≥ 0.5) the k-th smallest, k =
    int(p (1 − rank)); for γ > 0.5 the k-th largest, k = int(p · rank), i.e. the (p − k + 1)-th smallest. Every
    h ≤ that threshold is boosted. Where k = 0 the official code fails (an empty top-k); here: none boosted
    (γ ≤ 0.5) or all (γ > 0.5), the limits of the two branches."""
    rank = 1.0 - gamma
    if rank < 0.5:
        k = int(p * rank)
        return p - k + 1 if k else p
    return int(p * (1 - rank))


def flat_mask(curvature: Sequence[Tensor], gamma: float, ties: str = "exact",
              dtype: torch.dtype = torch.bool) -> list[Tensor]:
    """Masks (one per parameter, 0/1 in `dtype`) of the smallest-curvature coordinates (see `ire_ties`
    above): views of one flat tensor, so the conversion to `dtype` is one operation for all of them."""
    flat = torch.cat([h.detach().reshape(-1).float() for h in curvature])
    exact = ties == "exact"
    count = int(math.floor(gamma * flat.numel() + 0.5)) if exact else official_rank(gamma, flat.numel())
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
