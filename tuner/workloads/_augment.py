"""CIFAR augmentation as batched tensor ops on the training device: no per-image Python, no DataLoader.

What torchvision's `RandomCrop(32, padding=4)` + `RandomHorizontalFlip()` + `Normalize` + Cutout do image
by image, done for the whole batch at once: the crop and the flip are one gather from the zero-padded
uint8 batch, normalisation one broadcast, Cutout one mask. The random draws (offsets, flips, Cutout
centres) are made on the host from a seeded generator and travel with the batch's indices in one
non-blocking copy, so a step never waits on the device and a resumed run draws the same augmentation.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

PAD = 4  # pixels of zero padding before the random crop (the SAM papers' CIFAR recipe)
# columns of the per-image draw: crop offset y, x (0..2·PAD), flip (0/1), Cutout centre y, x
DRAWS = 5


@dataclass(frozen=True)
class Augment:
    """What to apply: crop+flip or not, and Cutout's side in pixels (0: none)."""

    crop_flip: bool
    cutout: int

    def draws(self, n: int, height: int, width: int, generator: torch.Generator) -> Tensor:
        """The host-side random numbers of `n` images: int64 n × DRAWS (zeros where not augmented)."""
        out = torch.zeros(n, DRAWS, dtype=torch.int64)
        if self.crop_flip:
            out[:, :2] = torch.randint(0, 2 * PAD + 1, (n, 2), generator=generator)
            out[:, 2] = torch.randint(0, 2, (n,), generator=generator)
        if self.cutout:
            out[:, 3] = torch.randint(0, height, (n,), generator=generator)
            out[:, 4] = torch.randint(0, width, (n,), generator=generator)
        return out


def crop_flip(images: Tensor, draws: Tensor) -> Tensor:
    """Each image of the uint8 batch B×C×H×W cropped from its zero-padded copy at its offset, and mirrored
    where its flip is 1: one gather."""
    b, c, h, w = images.shape
    padded = torch.nn.functional.pad(images, (PAD, PAD, PAD, PAD))
    dev = images.device
    rows = draws[:, 0:1] + torch.arange(h, device=dev)  # B×H
    across = torch.arange(w, device=dev)
    cols = draws[:, 1:2] + torch.where(draws[:, 2:3].bool(), across.flip(0), across)  # B×W
    batch = torch.arange(b, device=dev)[:, None, None, None]
    chan = torch.arange(c, device=dev)[None, :, None, None]
    return padded[batch, chan, rows[:, None, :, None], cols[:, None, None, :]]


def cutout(images: Tensor, draws: Tensor, size: int) -> Tensor:
    """DeVries and Taylor's Cutout: a size×size square around each image's centre set to 0 (the mean, after
    normalisation), clipped at the border."""
    _, _, h, w = images.shape
    dev = images.device
    low = size // 2
    dy = torch.arange(h, device=dev) - draws[:, 3:4]  # B×H offset from the centre row
    dx = torch.arange(w, device=dev) - draws[:, 4:5]
    inside = ((dy >= -low) & (dy < size - low))[:, :, None] & ((dx >= -low) & (dx < size - low))[:, None, :]
    return images.masked_fill(inside[:, None], 0.0)


def prepare(images: Tensor, draws: Tensor, augment: Augment, mean: Tensor, std: Tensor) -> Tensor:
    """The float32 batch the model sees: augmented (if asked), normalised per channel."""
    if augment.crop_flip:
        images = crop_flip(images, draws)
    out = (images.float() - mean) / std
    return cutout(out, draws, augment.cutout) if augment.cutout else out
