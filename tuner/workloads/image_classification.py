"""`image_classification`: the SAM family's home benchmark, CIFAR with a ResNet or a Wide ResNet, on real images.

    workload:
      name: image_classification
      options: {dataset: cifar10, root: ~/data, model: wrn-16-8, batch_size: 128, augment: crop_flip}

Datasets (`_image_files`): `fashion_mnist` (default root: Debian's `dataset-fashion-mnist`), `cifar10` and
`cifar100` (torchvision's extracted pickles) and `folder` (one subfolder per class). Models
(`_image_models`): `cnn`, `resnet18`, `resnetN` (resnet56), `wrn-D-K` (Zagoruyko's: wrn-16-8 has 11.0M
parameters, not davda54's 17M). The whole uint8 dataset goes onto the training device once; each batch is
gathered, cropped, flipped and normalised there (`_augment`), with its random draws made on the host and
sent with its indices in one non-blocking copy: no DataLoader workers, no host sync per step.

`loss: smooth_ce` is davda54/sam's smoothed cross-entropy (1 − s on the true class, s / (K − 1) on each
other), which is not torch's `label_smoothing` (s / K on every class, the true one included); `loss: ce`
with `label_smoothing` is torch's. `validation: held_out` (default) evaluates on a seeded tenth of the
training split; `validation: test` on the test split, where the papers' errors are measured.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from tuner.workloads import _diag
from tuner.workloads._augment import Augment, prepare
from tuner.workloads._base import Closure, Workload
from tuner.workloads._classify import Labels, classification_metrics
from tuner.workloads._data import BatchSampler, generator, split, to_device
from tuner.workloads._image_files import NAME, ImageData, check, read
from tuner.workloads._image_models import ALLOWED, build_model, model_builder
from tuner.workloads._options import WorkloadError, option
from tuner.workloads._registry import register

HELD_OUT = 0.1  # of the training split, the validation set of `validation: held_out`
EVAL_SUBSET = 1000  # validation images at the curve points
EVAL_BATCH = 500


@dataclass(frozen=True)
class ImageOptions:
    dataset: Literal["fashion_mnist", "cifar10", "cifar100", "folder"] = "fashion_mnist"
    root: str | None = option(None, path=True)
    model: str = option("cnn", lambda v: model_builder(v) is not None, ALLOWED)
    batch_size: int = option(128, lambda v: v >= 1, "an integer >= 1")
    augment: Literal["none", "crop_flip"] = "crop_flip"
    cutout: int = option(0, lambda v: v >= 0, "Cutout's side in pixels, 0 for none (16 on CIFAR-10)")
    loss: Literal["ce", "smooth_ce"] = "ce"
    label_smoothing: float = option(0.0, lambda v: 0 <= v < 1, "a smoothing in [0, 1)")
    label_noise: float = option(0.0, lambda v: 0 <= v < 1, "a flip rate in [0, 1)")
    subset: int | None = option(None, lambda v: v >= 10, "training images, an integer >= 10, or null for all")
    validation: Literal["held_out", "test"] = "held_out"
    eval_examples: int | None = option(None, lambda v: v >= 1, "validation images, an integer >= 1, or null for all")
    diag_examples: int = option(256, lambda v: v >= 1, "training images for the sharpness, an integer >= 1")

    def problem(self) -> str | None:
        """The dataset's files under `root`, checked now (names and headers: cheap)."""
        check(self.dataset, self.root, test=self.validation == "test")
        return None


def smooth_crossentropy(logits: Tensor, labels: Tensor, smoothing: float) -> Tensor:
    """davda54/sam's `smooth_crossentropy`, averaged over the batch: KL(target ‖ softmax), with target
    1 − s on the true class and s / (K − 1) on each other class."""
    log_probs = F.log_softmax(logits.float(), dim=-1)
    target = torch.full_like(log_probs, smoothing / (logits.shape[-1] - 1))
    target.scatter_(-1, labels[:, None], 1.0 - smoothing)
    return F.kl_div(log_probs, target, reduction="none").sum(-1).mean()


def _splits(data: ImageData, o: ImageOptions, seed: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(train images, train labels, validation images, validation labels) on the host, by the seed."""
    if o.validation == "test":
        train = torch.randperm(len(data.train_x), generator=generator(seed, "subset"))
        val_x, val_y = data.test_x, data.test_y
    else:
        held, train = split(len(data.train_x), (HELD_OUT, 1 - HELD_OUT), seed)
        val_x, val_y = data.train_x[held], data.train_y[held]
    if o.subset is not None:
        if o.subset > len(train):
            raise WorkloadError(f"{NAME}: option 'subset' = {o.subset} is larger than the training split "
                                f"(allowed: 10..{len(train)} for {o.dataset} with validation {o.validation})")
        train = train[:o.subset]
    if o.eval_examples is not None:
        val_x, val_y = val_x[:o.eval_examples], val_y[:o.eval_examples]
    return data.train_x[train], data.train_y[train], val_x, val_y


@register
class ImageClassification(Workload):
    """Images (Fashion-MNIST, CIFAR-10/100, a folder) with a CNN, ResNet or Wide ResNet: the SAM papers' benchmark."""

    name = NAME
    Options = ImageOptions
    primary_metric = ("eval/accuracy", "max")
    eval_subset = EVAL_SUBSET

    def __init__(self, options: ImageOptions, *, seed: int, device: torch.device) -> None:
        super().__init__(options, seed=seed, device=device)
        data = read(options.dataset, options.root)
        train_x, train_y, val_x, val_y = _splits(data, options, seed)
        self.classes = data.classes
        self.labels = Labels.with_noise(train_y, options.label_noise, len(data.classes), seed)
        mean, std = data.channel_stats
        self.mean = (255 * mean).float().reshape(-1, 1, 1).to(device)  # in uint8 units
        self.std = (255 * std).float().reshape(-1, 1, 1).to(device)
        self.x_train, self.y_train = train_x.to(device), self.labels.train.to(device)  # once, uint8
        self.x_val, self.y_val = val_x.to(device), val_y.to(device)
        self.image_size = tuple(train_x.shape[2:])
        self.augment = Augment(options.augment == "crop_flip", options.cutout)
        self.model = build_model(options.model, train_x.shape[1], len(data.classes)).to(device)
        self.sampler = BatchSampler(len(train_x), options.batch_size, seed)
        self.start_training_rng()

    def _plain(self, images: Tensor) -> Tensor:
        """Normalised, not augmented: what evaluation and the diagnostics see."""
        return (images.float() - self.mean) / self.std

    def _loss(self, logits: Tensor, labels: Tensor) -> Tensor:
        o = self.options
        if o.loss == "smooth_ce":
            return smooth_crossentropy(logits, labels, o.label_smoothing)
        return F.cross_entropy(logits, labels, label_smoothing=o.label_smoothing)

    def next_batch(self) -> tuple[Tensor, Tensor]:
        """Indices and augmentation draws decided on the host, one copy, then gathered and augmented on the device."""
        idx = self.sampler.next()
        g = generator(self.seed, "augment", self.sampler.epoch, self.sampler.position)  # a function of the position
        draws = self.augment.draws(len(idx), *self.image_size, g)
        packed = to_device(torch.cat([idx[:, None], draws], dim=1), self.device)
        rows = packed[:, 0]
        return prepare(self.x_train[rows], packed[:, 1:], self.augment, self.mean, self.std), self.y_train[rows]

    def closure(self, batch: tuple[Tensor, Tensor]) -> Closure:
        images, labels = batch

        def run() -> tuple[Tensor, Tensor]:
            self.model.train()
            logits = self.model(images)
            return self._loss(logits, labels), logits
        return run

    def evaluate(self, *, subset: bool = False) -> dict[str, float]:
        """Accuracy and cross-entropy on the validation images (the first `EVAL_SUBSET` with `subset`)."""
        n = min(EVAL_SUBSET, len(self.x_val)) if subset else len(self.x_val)
        ends = [(i, min(i + EVAL_BATCH, n)) for i in range(0, n, EVAL_BATCH)]
        batches = [(self.x_val[a:b], self.y_val[a:b]) for a, b in ends]
        return classification_metrics(self.model, batches, lambda x: self.model(self._plain(x)))

    def diagnostics(self, optimizer: Any) -> dict[str, float]:
        """λ_max (and where it applies the SAM edge) on a fixed batch of training images, BatchNorm in eval mode."""
        n = self.options.diag_examples
        x, y = self._plain(self.x_train[:n]), self.y_train[:n]

        def loss_fn() -> Tensor:
            return self._loss(self.model(x), y)
        return _diag.sharpness(loss_fn, self.model, optimizer, seed=self.seed, full_batch=False,
                               memory=self.diag_memory)
