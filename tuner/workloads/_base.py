"""The `Workload` base class: the one interface the trainer and the tuner use for every problem.

A workload owns a model, its data and its evaluation. The trainer asks it for the next batch,
for a closure over that batch (`closure() -> (loss, outputs)`, no backward: the optimizer takes its
own gradients, possibly several times on one batch), for evaluation metrics and for diagnostics.
Its state (trainable weights, buffers, data position, global RNG) makes a resumed trial exact.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from tuner.workloads import _diag
from tuner.workloads._data import BatchSampler, derive

Closure = Callable[[], tuple[Tensor, Any]]


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class Workload(ABC):
    """A trainable problem: model + data + evaluation + diagnostics, built from validated options.

    Subclasses set `name`, `Options` (a dataclass), `primary_metric` (metric, "max"|"min"), build
    `self.model` (and `self.pairs`, the scale-invariant pairs for balancers and balancedness) and a
    `self.sampler`, and implement `next_batch`, `closure` and `evaluate` (called under
    `torch.inference_mode`).
    """

    name: ClassVar[str]
    Options: ClassVar[type]
    primary_metric: ClassVar[tuple[str, str]]
    # Examples in the fixed validation subset that curve points evaluate (`evaluate(subset=True)`);
    # None: evaluation is cheap, every evaluation is of the full split.
    eval_subset: ClassVar[int | None] = None

    def __init__(self, options: Any, *, seed: int, device: torch.device) -> None:
        self.options, self.seed, self.device = options, seed, device
        self.pairs: list[tuple[Tensor, Tensor]] = []
        self.sampler: BatchSampler | None = None
        torch.manual_seed(derive(seed, "init"))  # model init (and LoRA init) depend on the seed only

    def start_training_rng(self) -> None:
        """Seed the global RNG (dropout) for training once the model is built."""
        torch.manual_seed(derive(self.seed, "train"))

    model: nn.Module

    @abstractmethod
    def next_batch(self) -> Any:
        """The next training batch (on the workload's device), in the seed's fixed order."""

    @abstractmethod
    def closure(self, batch: Any) -> Closure:
        """A zero-argument closure: forward on `batch` in train mode, returns (loss, outputs)."""

    @abstractmethod
    def evaluate(self) -> dict[str, float]:
        """Evaluation metrics (`eval/...`) on the validation split, model left in train mode.

        A workload with `eval_subset` set also takes `subset=True`: the same metrics on its first
        `eval_subset` validation examples (the trainer renames them `eval_subset/...`).
        """

    def diagnostics(self, optimizer: Any) -> dict[str, float]:
        """`diag/...` metrics, computed off the step clock. Default: balancedness of the pairs."""
        return _diag.balancedness(self.pairs) if self.pairs else {}

    def trainable_parameters(self) -> list[Tensor]:
        return [p for p in self.model.parameters() if p.requires_grad]

    # ------------------------------------------------------------------ state
    def _changing_state(self) -> dict[str, Tensor]:
        """Trainable parameters and buffers: the only tensors training can change."""
        trainable = {n for n, p in self.model.named_parameters() if p.requires_grad}
        buffers = {n for n, _ in self.model.named_buffers()}
        return {k: v.detach().clone() for k, v in self.model.state_dict().items() if k in trainable | buffers}

    def state_dict(self) -> dict[str, Any]:
        """Model (what training changes), data position and global RNG: enough for an exact resume."""
        return {
            "model": self._changing_state(),
            "sampler": self.sampler.state_dict() if self.sampler is not None else None,
            "rng": _rng_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state from `state_dict` of the same workload, options and seed."""
        missing = set(self._changing_state()) - set(state["model"])
        if missing:
            raise KeyError(f"{self.name} state lacks {sorted(missing)[0]!r}")
        self.model.load_state_dict(state["model"], strict=False)
        if self.sampler is not None:
            self.sampler.load_state_dict(state["sampler"])
        _set_rng_state(state["rng"])
