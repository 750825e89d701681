"""IRE's mask: the host path (numpy, counts read on the host) selects what the device path selects, and the
device path (a radix selection on the float32 bits) is exact, sorts nothing large and never reads the host."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import numpy as np
import pytest
import torch
from torch import Tensor

from methods import _device, _selection
from methods._selection import BRACKET_MIN, _chosen_on_device, _chosen_on_host, flat_mask

SORTS = ("sort", "kthvalue", "topk", "argsort", "msort")  # on torch and on torch.Tensor
HOST_CALLS = ("item", "tolist", "cpu", "numpy", "__bool__", "__int__", "__float__", "__index__")
GAMMAS = (1e-9, 1e-4, 0.01, 0.3, 0.5, 0.77, 0.999, 0.99999, 1.0)  # count 0, tiny, ..., p − 1 or so, p


@pytest.fixture
def on_device(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_device, "FORCE_ACCELERATOR_PATH", True)


@pytest.mark.parametrize("size", [400, 3 * BRACKET_MIN])  # one full partition; the bracketed selection
@pytest.mark.parametrize("levels", [3, 50, None])  # heavy ties, some ties, (almost surely) none
def test_host_and_device_selection_agree(levels, size):
    generator = torch.Generator().manual_seed(levels or 0)
    for trial in range(20):
        n = int(torch.randint(1, size, (1,), generator=generator))
        flat = torch.rand(n, generator=generator)
        if levels is not None:
            flat = (flat * levels).floor() / levels
        count = int(torch.randint(1, n + 1, (1,), generator=generator))
        host, device = _chosen_on_host(flat.numpy(), count, exact=True), _chosen_on_device(flat, count, exact=True)
        assert int(host.sum()) == count
        assert torch.equal(host, device), (trial, n, count)
        official = flat <= torch.kthvalue(flat, count).values  # int(γp) smallest plus every tie at the threshold
        assert torch.equal(_chosen_on_host(flat.numpy(), count, exact=False), official), (trial, n, count)


def _curvatures(seed: int, dtype: torch.dtype = torch.float32, nan: bool = True) -> list[Tensor]:
    """Parameters' curvatures full of what breaks a selection: a few levels (heavy ties), exact zeros of both
    signs, duplicates across parameters, negatives, ±inf, NaN, subnormals and (float32) random bit patterns."""
    g = torch.Generator().manual_seed(seed)
    levels = (torch.rand(40, 50, generator=g) * 4).floor() / 4 - 0.25  # −0.25, 0, 0.25, 0.5
    zeros = torch.where(torch.rand(3000, generator=g) < 0.5, -0.0, 0.0)  # −0.0 and +0.0 interleaved
    squares = torch.randn(7, 300, generator=g) ** 2
    signed = torch.randn(1500, generator=g).mul(8).round().div(8)  # ties on both sides of zero
    special = torch.tensor([float("inf"), -float("inf"), 1e-45, -1e-45, 1.2e-38, -0.0, 0.0, 3.0e38] * 20)
    special = special[torch.randperm(special.numel(), generator=g)]
    out = [levels, zeros, squares, signed, levels.clone(), special, signed[:500].clone()]  # duplicates too
    if dtype == torch.float32:  # the whole key range; NaN bit patterns (both signs, any payload) are kept or not
        bits = torch.randint(-(2**31), 2**31, (2000,), generator=g, dtype=torch.int64).to(torch.int32)
        patterns = bits.view(torch.float32)
        out.append(patterns if nan else torch.where(patterns.isnan(), 1.0, patterns))
    if nan:
        out.append(torch.where(torch.rand(600, generator=g) < 0.2, float("nan"), torch.rand(600, generator=g)))
    return [h.to(dtype) for h in out]


def _count(gamma: float, p: int, ties: str) -> int:
    """round(γp) (exact), or the ascending rank of update_mask's threshold (official, rank = 1 − γ: the
    int(p(1 − rank))-th smallest for rank ≥ 0.5, the int(p·rank)-th largest below; all where that k is 0)."""
    if ties == "exact":
        return int(np.floor(gamma * p + 0.5))
    rank = 1 - gamma
    if rank >= 0.5:
        return int(p * (1 - rank))
    k = int(p * rank)
    return p - k + 1 if k else p


def _reference(flat: Tensor, count: int, ties: str) -> Tensor:
    """docs/METHODS.md's masks in numpy, NaN the largest: the first `count` of a stable ascending argsort (exact),
    or every h <= the count-th smallest (official; every h when that is NaN, since NaN sorts last)."""
    values = flat.float().numpy()
    chosen = np.zeros(values.size, dtype=bool)
    if count:
        order = np.argsort(values, kind="stable")  # −0.0 == +0.0: position decides
        if ties == "exact":
            chosen[order[:count]] = True
        else:
            kth = values[order[count - 1]]
            chosen = np.isnan(kth) | (values <= kth)
    return torch.from_numpy(chosen)


def _flat(masks: list[Tensor]) -> Tensor:
    return torch.cat([m.reshape(-1) for m in masks])


@pytest.mark.parametrize("ties", ["exact", "official"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_device_mask_is_the_reference_mask(ties: str, dtype: torch.dtype, on_device: None) -> None:
    """Exactly the stable-argsort mask (or the official `h <= kth`) on ties, ±0, ±inf, NaN, negatives."""
    for seed in range(3):
        curvature = _curvatures(seed, dtype)
        flat = torch.cat([h.reshape(-1) for h in curvature])
        for gamma in (*GAMMAS, 1 / flat.numel(), 0.5 + 0.5 / flat.numel()):
            count = _count(gamma, flat.numel(), ties)
            masks = flat_mask(curvature, gamma, ties=ties)
            assert [m.shape for m in masks] == [h.shape for h in curvature]
            got = _flat(masks)
            if ties == "exact":
                assert int(got.sum()) == count, (seed, gamma)
            assert torch.equal(got, _reference(flat, count, ties)), (seed, gamma, count)


@pytest.mark.parametrize("ties", ["exact", "official"])
def test_device_mask_is_exact_across_histogram_chunks(ties: str, on_device: None,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks of 2^24 coordinates are more than a test holds: smaller chunks (a ragged last one) count alike."""
    monkeypatch.setattr(_selection, "RADIX_CHUNK", 4099)
    curvature = _curvatures(7)
    flat = torch.cat([h.reshape(-1) for h in curvature])
    for gamma in GAMMAS:
        count = _count(gamma, flat.numel(), ties)
        assert torch.equal(_flat(flat_mask(curvature, gamma, ties=ties)), _reference(flat, count, ties)), gamma


def test_one_distinct_value_and_one_coordinate(on_device: None) -> None:
    """All p coordinates in one bin of both passes (one value), and p = 1."""
    curvature = [torch.full((50, 40), 0.125), torch.full((17,), 0.125)]
    for gamma in (0.01, 0.5, 1.0):
        count = _count(gamma, 2017, "exact")
        got = _flat(flat_mask(curvature, gamma))
        assert torch.equal(got, torch.arange(2017) < count)  # ties by position: the first `count`
        assert bool(_flat(flat_mask(curvature, gamma, ties="official")).all())
    assert _flat(flat_mask([torch.tensor([-3.0])], 1.0)).tolist() == [True]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_host_and_device_masks_agree(dtype: torch.dtype, monkeypatch: pytest.MonkeyPatch) -> None:
    """The two paths of `flat_mask` on the same curvatures (ties, ±0, ±inf, subnormals, NaN) give the same masks,
    also where the threshold is a NaN (NaN sorts last on both)."""
    for seed in range(2):
        curvature = _curvatures(seed, dtype)
        flat = torch.cat([h.reshape(-1).float() for h in curvature])
        numbers = int((~flat.isnan()).sum())
        for ties in ("exact", "official"):
            for gamma in (*GAMMAS, numbers / flat.numel(), (numbers + 7) / flat.numel()):
                host = _flat(flat_mask(curvature, gamma, ties=ties))
                monkeypatch.setattr(_device, "FORCE_ACCELERATOR_PATH", True)
                device = _flat(flat_mask(curvature, gamma, ties=ties))
                monkeypatch.setattr(_device, "FORCE_ACCELERATOR_PATH", False)
                assert torch.equal(host, device), (seed, ties, gamma)


def test_host_path_with_a_nan_threshold_takes_count_coordinates() -> None:
    """NaN sorts last on the host as on the device: past the numbers, NaNs are ties taken by position."""
    curvature = [torch.tensor([0.5, float("nan"), 0.1, float("nan")])]
    assert flat_mask(curvature, 0.75)[0].tolist() == [True, True, True, False]
    assert flat_mask(curvature, 0.75, ties="official")[0].tolist() == [True, True, True, True]


def _recording(monkeypatch: pytest.MonkeyPatch, owner: object, names: tuple[str, ...],
               record: Callable[[str, tuple], None]) -> None:
    for name in names:
        original = getattr(owner, name)

        def wrapper(*args, _name=name, _original=original, **kwargs):
            record(_name, args)
            return _original(*args, **kwargs)
        monkeypatch.setattr(owner, name, wrapper)


@pytest.mark.parametrize("ties", ["exact", "official"])
def test_device_path_sorts_nothing_large(ties: str, on_device: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """No sort, top-k or k-th value over the p coordinates (p = 300k): at most over one histogram's bins."""
    torch.manual_seed(0)
    curvature = [torch.rand(500, 400) ** 2, torch.zeros(50_000), (torch.rand(50_000) * 5).floor()]
    flat = torch.cat([h.reshape(-1) for h in curvature])
    sizes: Counter[str] = Counter()

    def record(name: str, args: tuple) -> None:
        sizes[name] = max(sizes[name], max((a.numel() for a in args if isinstance(a, Tensor)), default=0))
    for owner in (torch, torch.Tensor):
        _recording(monkeypatch, owner, SORTS, record)
    masks = flat_mask(curvature, 0.6, ties=ties)
    monkeypatch.undo()
    assert max(sizes.values(), default=0) <= _selection.RADIX_BINS + 1, dict(sizes)
    assert torch.equal(_flat(masks), _reference(flat, _count(0.6, flat.numel(), ties), ties))


@pytest.mark.parametrize("ties", ["exact", "official"])
def test_device_path_makes_no_host_call(ties: str, on_device: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """No read of a device value on the host (item, tolist, bool(t), int(t), ...) while the mask is built."""
    curvature = _curvatures(3)
    calls: Counter[str] = Counter()
    _recording(monkeypatch, torch.Tensor, HOST_CALLS, lambda name, args: calls.update([name]))
    masks = flat_mask(curvature, 0.4, ties=ties, dtype=torch.float32)
    monkeypatch.undo()
    assert not calls, dict(calls)
    assert masks[0].dtype == torch.float32


@pytest.mark.parametrize("ties", ["exact", "official"])
@pytest.mark.parametrize("dtype", [torch.bool, torch.bfloat16])
def test_device_path_runs_on_meta_tensors(ties: str, dtype: torch.dtype) -> None:
    """On `meta` tensors (no data) a host read raises and a data-dependent shape (nonzero, masked_select, unique)
    cannot be computed: the whole device path running there shows it needs neither."""
    curvature = [torch.empty(300, 200, device="meta"), torch.empty(7, device="meta", dtype=torch.bfloat16)]
    masks = flat_mask(curvature, 0.3, ties=ties, dtype=dtype)
    assert [(m.shape, m.dtype, m.device.type) for m in masks] == [(h.shape, dtype, "meta") for h in curvature]
    with pytest.raises((RuntimeError, NotImplementedError)):  # the check has teeth: a host read fails there
        torch.empty(3, device="meta").sum().item()
