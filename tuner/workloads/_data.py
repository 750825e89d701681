"""Seeded data plumbing shared by workloads: derived seeds, splits, label noise, a resumable sampler.

Everything random about the data comes from the trial seed through `derive`, never from the global
RNG, so two methods run with one seed see the same splits, the same noisy labels and the same batches.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor


def derive(seed: int, *tags: object) -> int:
    """An independent 63-bit seed for one purpose (init, order, split, noise) of one trial seed."""
    digest = hashlib.sha256(repr((int(seed), *tags)).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def generator(seed: int, *tags: object) -> torch.Generator:
    """A CPU generator seeded for one purpose: the global RNG is left alone."""
    return torch.Generator().manual_seed(derive(seed, *tags))


def to_device(tensor: Tensor, device: torch.device) -> Tensor:
    """A host tensor on `device` without the host waiting for the device.

    A plain `.to("cuda")` of pageable memory copies and then waits for the stream (a host sync every
    batch); a pinned copy with `non_blocking=True` is queued behind the step instead. The pinned
    buffer comes from torch's caching host allocator, which reuses it only once the copy is done.
    """
    if tensor.device == device:
        return tensor
    if device.type == "cuda" and tensor.device.type == "cpu":
        tensor = tensor.pin_memory()
    return tensor.to(device, non_blocking=device.type != "cpu")


def cache_dir() -> Path:
    """Where downloaded wheels and trained tokenizers live: $SHARPTUNE_CACHE or ~/.cache/sharptune."""
    path = Path(os.environ.get("SHARPTUNE_CACHE") or Path.home() / ".cache" / "sharptune")
    path.mkdir(parents=True, exist_ok=True)
    return path


def split(n: int, fractions: tuple[float, ...], seed: int) -> list[Tensor]:
    """Disjoint random index sets with the given fractions (the last takes the remainder)."""
    order = torch.randperm(n, generator=generator(seed, "split"))
    sizes = [int(round(f * n)) for f in fractions[:-1]]
    bounds = [0]
    for size in sizes:
        bounds.append(bounds[-1] + size)
    bounds.append(n)
    return [order[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def k_shot(labels: Tensor, k: int, num_classes: int, seed: int) -> Tensor:
    """k random indices per class (sorted), for few-shot training sets."""
    g = generator(seed, "k_shot")
    picks = []
    for c in range(num_classes):
        members = (labels == c).nonzero().flatten()
        picks.append(members[torch.randperm(len(members), generator=g)[:k]])
    return torch.cat(picks).sort().values


def flip_labels(labels: Tensor, rate: float, num_classes: int, seed: int) -> Tensor:
    """Symmetric label noise: exactly round(rate·n) labels replaced by a different, uniform class."""
    g = generator(seed, "label_noise")
    noisy = labels.clone()
    chosen = torch.randperm(len(labels), generator=g)[: int(round(rate * len(labels)))]
    shift = torch.randint(1, num_classes, (len(chosen),), generator=g)
    noisy[chosen] = (labels[chosen] + shift) % num_classes
    return noisy


class BatchSampler:
    """Epoch-wise shuffled mini-batches of indices; each epoch's order comes from (seed, epoch).

    Its state is just (epoch, position), so a resumed run draws exactly the batches it would have.
    A final incomplete batch is dropped so every step sees `batch_size` examples.
    """

    def __init__(self, n: int, batch_size: int | None, seed: int) -> None:
        self.n, self.seed = n, seed
        self.batch_size = n if batch_size is None else min(batch_size, n)
        self.epoch, self.position = 0, 0
        self._order: Tensor | None = None

    def _epoch_order(self) -> Tensor:
        if self._order is None:
            full = self.batch_size == self.n
            self._order = torch.arange(self.n) if full else torch.randperm(
                self.n, generator=generator(self.seed, "order", self.epoch))
        return self._order

    def next(self) -> Tensor:
        """Indices of the next batch."""
        if self.position + self.batch_size > self.n:
            self.epoch, self.position, self._order = self.epoch + 1, 0, None
        batch = self._epoch_order()[self.position:self.position + self.batch_size]
        self.position += self.batch_size
        return batch

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch, self.position, self._order = int(state["epoch"]), int(state["position"]), None
