"""The `Workload` base class: the one interface the trainer and the tuner use for every problem.

A workload owns a model, its data and its evaluation. The trainer asks it for the next batch,
for a closure over that batch (`closure() -> (loss, outputs)`, no backward: the optimizer takes its
own gradients, possibly several times on one batch), for evaluation metrics and for diagnostics.
Its state (trainable weights, buffers, data position, global RNG) makes a resumed trial exact.

Your own workload is a subclass named in the spec by import target (`workload: {name:
"my_tasks.py:MyTask"}`); `tuner.workloads.DatasetWorkload` writes most of it for a model, a loss and
two `torch.utils.data.Dataset`s; `tuner.workloads.conformance` checks the contract below.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
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


@dataclass(frozen=True)
class NoOptions:
    """The options of a workload that takes none."""


class Workload(ABC):
    """A trainable problem: model + data + evaluation + diagnostics, built from validated options.

    A subclass sets, as class attributes:

    - `Options`: a frozen dataclass; each field has a default, optionally `option(default, check,
      allowed)`. The spec's `workload.options` are checked against it (unknown names, types, values)
      before anything starts, and the `parameters` of a spec may search any of its fields;
    - `primary_metric`: `("eval/<name>", "max" | "min")`, what `evaluate` returns and a spec ranks by;
    - `name` (registered workloads only) and `eval_subset` (optional, see `evaluate`).

    `__init__(options, *, seed, device)` calls `super().__init__` first, then builds `self.model` on
    `device`, `self.sampler` (a `BatchSampler`, or anything with `next`, `state_dict`,
    `load_state_dict`), `self.pairs`, and ends with `self.start_training_rng()`.

    **Seeds pair runs across methods.** Everything random is a function of `seed` alone: the model
    init (`super().__init__` seeds torch with it), splits, label noise and the batch order (draw them
    from `tuner.workloads._data.generator(seed, "tag")`, never from the global RNG). Two methods run
    with one seed then see the same initial weights and the same batches, so a difference between
    them is the method's, and confirmation seeds compare methods pairwise.

    **Pairs** are the scale-invariant factor pairs `(x, y)` (LoRA's B and A, two consecutive linear
    layers of a homogeneous net): the balancers (oBAR, nBAR) rescale them and `diagnostics` logs
    their balancedness `D = ||x||² - ||y||²`. Leave `self.pairs` empty when the model has none;
    `methods.find_lora_pairs(model)` finds them in a peft model.

    **A resumed trial is exact**: `state_dict` holds the trainable weights, the buffers, the
    sampler's position and the global RNG; a trial killed and resumed from it takes the very same
    steps. Keep anything else that changes while training in those, or extend both methods.
    """

    name: ClassVar[str] = ""  # a registered workload's name; a target's is its class path
    Options: ClassVar[type] = NoOptions
    primary_metric: ClassVar[tuple[str, str]]
    # Examples in the fixed validation subset that curve points evaluate (`evaluate(subset=True)`);
    # None: evaluation is cheap, every evaluation is of the full split.
    eval_subset: ClassVar[int | None] = None

    def __init__(self, options: Any, *, seed: int, device: torch.device) -> None:
        self.options, self.seed, self.device = options, seed, device
        self.pairs: list[tuple[Tensor, Tensor]] = []
        self.sampler: BatchSampler | None = None
        self.diag_memory: dict[str, Any] = {}  # what a diagnostic carries to its next call (`_diag.sharpness`)
        torch.manual_seed(derive(seed, "init"))  # model init (and LoRA init) depend on the seed only

    def start_training_rng(self) -> None:
        """Seed the global RNG (dropout) for training once the model is built."""
        torch.manual_seed(derive(self.seed, "train"))

    model: nn.Module

    @abstractmethod
    def next_batch(self) -> Any:
        """The next training batch (on the workload's device), in the seed's fixed order.

        Called once per optimizer step; the closure of that step may run several times on it.
        """

    @abstractmethod
    def closure(self, batch: Any) -> Closure:
        """A zero-argument closure: forward on `batch` in train mode, returns (loss, outputs).

        No `zero_grad`, no `backward`: the optimizer calls it once per gradient it needs (twice for
        SAM: at w and at w + e) and differentiates the loss itself. `loss` is a scalar tensor that
        depends on the trainable parameters; `outputs` are the model's outputs (Functional-SAM uses them).
        """

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
            "diag_memory": copy.deepcopy(self.diag_memory),
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
        self.diag_memory = copy.deepcopy(state.get("diag_memory", {}))
