"""The pass engine: every forward and backward a method's step makes, counted, in precision, averaged.

A step runs the model two or three times on one batch; here are the closure protocol (`_protocol`), the
counts (`fwd`, `bwd`, `grad_evals`), autocast and fp16's loss scale (`_precision`), the average over ranks
(`_distributed`), the replay of a pass on one batch (`_passes`: same RNG, BatchNorm frozen), and the base
optimizer. `SharpOptimizer` composes the parts on top.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from methods._base_optimizers import build_base
from methods._distributed import average_
from methods._errors import ConfigError
from methods._passes import RngSnapshot, frozen_batchnorm, logits_of, sample_labels
from methods._precision import Precision
from methods._protocol import explain_backward_closure

Closure = Callable[[], Any]


class Engine(torch.optim.Optimizer):
    """The base optimizer over `params`, and the passes a step takes on one closure's batch."""

    def __init__(self, params: Sequence[Tensor] | Sequence[dict[str, Any]], hparams: Mapping[str, Any], *,
                 batchnorms: Sequence[nn.Module], closure_style: str, precision: str) -> None:
        super().__init__(params, {"lr": hparams["lr"]})
        self.hparams = dict(hparams)
        self.base = build_base(self.param_groups, self.hparams)  # sgd, adamw or any base by name
        self.param_groups = self.base.param_groups
        self.closure_style = closure_style
        self.counts = {"fwd": 0, "bwd": 0, "grad_evals": 0}
        self._params = [p for g in self.param_groups for p in g["params"] if p.requires_grad]
        group_of = {id(p): k for k, g in enumerate(self.param_groups) for p in g["params"]}
        self._group = [group_of[id(p)] for p in self._params]  # param index -> param group index
        self._batchnorms = list(batchnorms)
        self._cuda = sorted({p.device for p in self._params if p.device.type == "cuda"}, key=str)
        self.loss_scale = Precision(precision, "cuda" if self._cuda else "cpu")
        self._generator = torch.Generator().manual_seed(0)  # label sampling; never touches the global RNG
        self._device_generators: dict[str, torch.Generator] = {}  # the same on accelerators, one per device
        self._first_loss: Tensor | None = None  # the step's first-pass loss, what step() returns

    def _forward(self, closure: Closure) -> tuple[Tensor, Any]:
        with torch.enable_grad(), self.loss_scale.autocast():
            result = closure()
        loss, outputs = result if isinstance(result, tuple) else (result, None)
        if not isinstance(loss, Tensor) or loss.numel() != 1:
            raise ConfigError("the closure must return (loss, outputs) with a scalar loss tensor")
        self.counts["fwd"] += 1
        if self._first_loss is None:
            self._first_loss = loss
        return loss, outputs

    def _grad(self, output: Tensor, inputs: Sequence[Tensor], grad_outputs: Tensor | None = None,
              keep_graph: bool = False, sync: bool = True) -> list[Tensor]:
        """∇ of `output` (a loss, or outputs with a cotangent) over `inputs`, parameters first: the
        parameters' part unscaled (fp16) and averaged over ranks; a further input's keeps the scale.
        `keep_graph`: the graph stays for one more backward through the same outputs; `sync` False: not averaged."""
        if grad_outputs is None:
            output = self.loss_scale.scaled(output)
        with explain_backward_closure():
            grads = list(torch.autograd.grad(output, list(inputs), grad_outputs, retain_graph=keep_graph,
                                             allow_unused=True, materialize_grads=True))
        self.counts["bwd"], self.counts["grad_evals"] = self.counts["bwd"] + 1, self.counts["grad_evals"] + 1
        own = grads[:len(self._params)]
        self.loss_scale.unscale_(own)
        average_(own if sync else [])
        return grads

    def _loss_grads(self, closure: Closure, keep_graph: bool = False,
                    sync: bool = True) -> tuple[Tensor, Any, list[Tensor]]:
        """One forward and backward on the batch: loss, outputs and the parameters' gradients."""
        if self.closure_style == "outputs":
            loss, outputs = self._forward(closure)
            return loss, outputs, self._grad(loss, self._params, keep_graph=keep_graph, sync=sync)
        for p in self._params:
            p.grad = None
        with torch.enable_grad(), self.loss_scale.autocast():
            result = closure()  # zeroes, forwards, calls backward, returns the loss (torch's convention)
        loss = result[0] if isinstance(result, tuple) else result
        if not isinstance(loss, Tensor) or loss.numel() != 1:
            raise ConfigError("closure_style='backward': the closure must call backward() and return the scalar loss")
        if self._first_loss is None:
            self._first_loss = loss
        grads = [torch.zeros_like(p) if p.grad is None else p.grad for p in self._params]
        for p in self._params:
            p.grad = None
        self.counts.update({key: n + 1 for key, n in self.counts.items()})
        average_(grads if sync else [])
        return loss, None, grads

    @contextlib.contextmanager
    def _replay(self, rng: RngSnapshot) -> Iterator[None]:
        """A later pass on the step's batch: the first pass's RNG state again, BatchNorm statistics frozen."""
        rng.restore()
        with frozen_batchnorm(self._batchnorms):
            yield

    def _fisher_squares(self, closure: Closure, rng: RngSnapshot, what: str, outputs: Any = None) -> list[Tensor]:
        """Squared gradient of the loss on labels sampled from the model's predictions (one backward).

        `outputs`: the step's own forward, its graph kept (a backward through the same forward, no
        second one); otherwise the forward is replayed on θ with the step's RNG state."""
        if outputs is None:
            with self._replay(rng):
                _, outputs = self._forward(closure)
        logits = logits_of(outputs, what)
        flat = logits.reshape(-1, logits.shape[-1])
        probs = torch.softmax(flat.detach().float(), dim=-1)  # sampled where it lies: no host copy
        if self.loss_scale.scaling:  # fp16 logits may overflow: sample anyway, the gradient check skips the step
            probs = probs.nan_to_num(1.0, 1.0, 0.0)
        labels = sample_labels(probs, self._label_generator(probs.device))
        grads = self._grad(F.cross_entropy(flat.float(), labels), self._params)  # fp32 loss: scalable
        torch._foreach_mul_(grads, grads)  # the gradients are this pass's own: squared where they lie
        return grads

    def _label_generator(self, device: torch.device) -> torch.Generator | None:
        """The label-sampling generator on `device`: each device's is seeded 0 and saved in `state_dict`.
        None on the meta device, which holds shapes and no RNG (tests run steps there to catch host reads)."""
        if device.type == "cpu":
            return self._generator
        if device.type == "meta":
            return None
        key = str(device)
        if key not in self._device_generators:
            self._device_generators[key] = torch.Generator(device=device).manual_seed(0)
        return self._device_generators[key]

    def _engine_state(self) -> dict[str, Any]:
        """The engine's slice of `state_dict`: base state, counts, loss scale, label generators."""
        return {"base": self.base.state_dict(), "counts": dict(self.counts),
                "loss_scale": self.loss_scale.state_dict(), "generator": self._generator.get_state(),
                "device_generators": {k: g.get_state() for k, g in self._device_generators.items()}}

    def _load_engine_state(self, state: Mapping[str, Any]) -> None:
        self.base.load_state_dict(state["base"])
        self.param_groups = self.base.param_groups
        self.counts = dict(state["counts"])
        if "loss_scale" in state:
            self.loss_scale.load_state_dict(state["loss_scale"])
        self._generator.set_state(state["generator"])
        for key, generator in state.get("device_generators", {}).items():
            self._label_generator(torch.device(key)).set_state(generator)
