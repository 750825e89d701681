"""Shared pieces of the classification workloads: label noise on the training split, evaluation."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tuner.workloads._data import flip_labels


@dataclass
class Labels:
    """Training labels as trained on (possibly noisy) next to the clean ones; validation stays clean."""

    clean: Tensor
    train: Tensor

    @classmethod
    def with_noise(cls, clean: Tensor, rate: float, num_classes: int, seed: int) -> Labels:
        noisy = flip_labels(clean, rate, num_classes, seed) if rate > 0 else clean.clone()
        return cls(clean=clean, train=noisy)

    @property
    def flipped_fraction(self) -> float:
        return float((self.clean != self.train).float().mean())


def classification_metrics(model: nn.Module, batches: Iterable[tuple[object, Tensor]],
                           logits_fn: Callable[[object], Tensor]) -> dict[str, float]:
    """Accuracy and mean cross-entropy over all batches, in eval mode and without gradients.

    The sums stay on the device until the end: one transfer per evaluation, not two per batch.
    """
    was_training = model.training
    model.eval()
    loss, correct, total = None, None, 0
    with torch.inference_mode():
        for inputs, labels in batches:
            logits = logits_fn(inputs)
            batch_loss = F.cross_entropy(logits.float(), labels, reduction="sum").double()
            batch_correct = (logits.argmax(-1) == labels).sum()
            loss = batch_loss if loss is None else loss + batch_loss
            correct = batch_correct if correct is None else correct + batch_correct
            total += len(labels)
    model.train(was_training)
    return {"eval/accuracy": int(correct) / total, "eval/loss": float(loss) / total}
