"""`DatasetWorkload`: the common case of your own model in about 30 lines.

You have a model, a loss and train/validation `torch.utils.data.Dataset`s whose items are
`(inputs, target)`. Subclass, set `Options` and `primary_metric`, and write `build_model` and
`datasets` (and `loss` when it is not cross-entropy). The helper does the rest the way the built-in
workloads do: batches in the seed's order (paired across methods, resumable), the model's init
drawn from the seed, optional label noise on the training split (an option `label_noise`, which
confirmation stress levels vary), evaluation of loss (and accuracy for class targets) on the whole
validation set, and LoRA pairs found in a peft model.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset, default_collate

from methods import find_lora_pairs
from tuner.workloads._base import Closure, Workload
from tuner.workloads._classify import Labels
from tuner.workloads._data import BatchSampler, derive
from tuner.workloads._data import to_device as _to_device


def to_device(value: Any, device: torch.device) -> Any:
    """Tensors anywhere in nested tuples, lists and dicts moved to `device`."""
    if isinstance(value, Tensor):
        return _to_device(value, device)
    if isinstance(value, dict):
        return {k: to_device(v, device) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(to_device(v, device) for v in value)
    return value


class DatasetWorkload(Workload):
    """A model trained on `(inputs, target)` items of a train `Dataset`, evaluated on a validation one.

    Options it reads when your `Options` has them: `batch_size` (else `batch_size` here) and
    `label_noise` (a flip rate for integer class targets, training split only).
    """

    batch_size: int = 32
    eval_batch_size: int = 256

    def __init__(self, options: Any, *, seed: int, device: torch.device) -> None:
        super().__init__(options, seed=seed, device=device)
        torch.manual_seed(derive(seed, "data"))  # any randomness in `datasets` is the seed's too
        self.train_set, self.val_set = self.datasets()
        torch.manual_seed(derive(seed, "init"))  # the init does not depend on how the data was built
        self.model = self.build_model().to(device)
        self.pairs = find_lora_pairs(self.model)
        self.labels = self._noisy_labels(float(getattr(options, "label_noise", 0.0) or 0.0))
        size = int(getattr(options, "batch_size", self.batch_size))
        self.sampler = BatchSampler(len(self.train_set), size, seed)  # type: ignore[arg-type]
        self.start_training_rng()

    # ---------------------------------------------------------------- what you write
    @abstractmethod
    def build_model(self) -> nn.Module:
        """The model, freshly initialised (the global RNG is seeded from the trial seed here)."""

    @abstractmethod
    def datasets(self) -> tuple[Dataset, Dataset]:
        """(train, validation) datasets of `(inputs, target)` items; the same for every seed is fine."""

    def loss(self, outputs: Tensor, targets: Tensor) -> Tensor:
        """The training (and evaluation) loss; default cross-entropy on class targets."""
        return F.cross_entropy(outputs.float(), targets)

    def forward(self, inputs: Any) -> Tensor:
        """The model's outputs for a batch of inputs; default `model(inputs)` (`model(**inputs)` for a dict)."""
        return self.model(**inputs) if isinstance(inputs, dict) else self.model(inputs)

    # ---------------------------------------------------------------- the rest
    def _noisy_labels(self, rate: float) -> Labels | None:
        if rate <= 0:
            return None
        targets = torch.as_tensor([int(self.train_set[i][1]) for i in range(len(self.train_set))])  # type: ignore[arg-type]
        return Labels.with_noise(targets, rate, int(targets.max()) + 1, self.seed)

    def next_batch(self) -> tuple[Any, Tensor]:
        idx = self.sampler.next()  # type: ignore[union-attr]
        inputs, targets = default_collate([self.train_set[i] for i in idx.tolist()])
        if self.labels is not None:
            targets = self.labels.train[idx]
        return to_device(inputs, self.device), to_device(targets, self.device)

    def closure(self, batch: tuple[Any, Tensor]) -> Closure:
        inputs, targets = batch

        def run() -> tuple[Tensor, Tensor]:
            self.model.train()
            outputs = self.forward(inputs)
            return self.loss(outputs, targets), outputs
        return run

    def evaluate(self) -> dict[str, float]:
        """`eval/loss` over the validation set and, for class targets, `eval/accuracy`."""
        was_training = self.model.training
        self.model.eval()
        total, correct, count = 0.0, 0, 0
        classes = True
        with torch.inference_mode():
            for start in range(0, len(self.val_set), self.eval_batch_size):  # type: ignore[arg-type]
                stop = min(start + self.eval_batch_size, len(self.val_set))  # type: ignore[arg-type]
                inputs, targets = to_device(default_collate([self.val_set[i] for i in range(start, stop)]),
                                            self.device)
                outputs = self.forward(inputs)
                total += float(self.loss(outputs, targets)) * (stop - start)
                classes = classes and not targets.is_floating_point() and outputs.dim() == targets.dim() + 1
                if classes:
                    correct += int((outputs.argmax(-1) == targets).sum())
                count += stop - start
        self.model.train(was_training)
        metrics = {"eval/loss": total / max(count, 1)}
        if classes:
            metrics["eval/accuracy"] = correct / max(count, 1)
        return metrics
