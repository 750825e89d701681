"""`Passes`: the pass engine, and the one typed object every part of a step is handed.

A step runs the model two or three times on one batch. `Passes` makes every one of those passes: the closure
protocol (`_protocol`), the counts (`fwd`, `bwd`, `grad_evals`), autocast and fp16's loss scale (`_precision`),
the average over ranks (`_distributed`), the replay of a pass on the same batch (`_replay`: same RNG, BatchNorm
frozen) and the Fisher pass. It also holds what a part reads of the optimizer: the trainable parameters in one
order, their groups, the scale-invariant pairs, the base optimizer, the per-parameter state and the step count.
A part (`_kinds`) sees the optimizer only through it, so a family file reads as the rule it implements.
`SharpOptimizer` and `ClosureAdapter` both run their passes here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from methods._distributed import average_
from methods._errors import ConfigError
from methods._precision import Precision
from methods._protocol import explain_backward_closure
from methods._replay import RngSnapshot, frozen_batchnorm, logits_of, sample_labels

Closure = Callable[[], Any]


class Passes:
    """Every forward and backward of a step, counted, in precision, averaged; and what the parts read.

    `params`: the trainable parameters, in the order every gradient list follows. `groups[i]`: the index of
    params[i]'s parameter group. `pairs` and `pair_index`: the scale-invariant (x, y) pairs, as tensors and as
    indices into `params`. `names`: id(parameter) -> name, where known. `state`: the optimizer's per-parameter
    state (a part's tensors live there, so they follow the optimizer's device moves). `step`: steps taken.
    """

    def __init__(self, params: Sequence[Tensor], base: torch.optim.Optimizer, hparams: Mapping[str, Any], *,
                 state: dict[Tensor, dict[str, Any]], pairs: Sequence[tuple[Tensor, Tensor]] = (),
                 names: Mapping[int, str] | None = None, batchnorms: Sequence[nn.Module] = (),
                 closure_style: str = "outputs", precision: str = "fp32") -> None:
        self.params, self.base, self.hparams, self.state = list(params), base, hparams, state
        index = {id(p): i for i, p in enumerate(self.params)}
        missing = [k for k, pair in enumerate(pairs) if any(id(t) not in index for t in pair)]
        if missing:
            raise ConfigError(f"pairs[{missing[0]}] holds a tensor that is not a trainable parameter of the optimizer")
        self.pairs = [(x, y) for x, y in pairs]
        self.pair_index = [(index[id(x)], index[id(y)]) for x, y in self.pairs]
        group_of = {id(p): k for k, g in enumerate(base.param_groups) for p in g["params"]}
        self.groups = [group_of[id(p)] for p in self.params]
        self.names: Mapping[int, str] = names or {}
        self.step = 0
        self.closure_style = closure_style
        self.counts = {"fwd": 0, "bwd": 0, "grad_evals": 0}
        self.batchnorms = list(batchnorms)
        self.cuda = sorted({p.device for p in self.params if p.device.type == "cuda"}, key=str)
        self.loss_scale = Precision(precision, "cuda" if self.cuda else "cpu")
        self.generator = torch.Generator().manual_seed(0)  # label sampling; never touches the global RNG
        self.device_generators: dict[str, torch.Generator] = {}  # the same on accelerators, one per device
        self.first_loss: Tensor | None = None  # the step's first-pass loss, what step() returns

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        """The base optimizer's parameter groups, as they are now (a load replaces the list)."""
        return self.base.param_groups

    def snapshot(self) -> RngSnapshot:
        """The RNG state before a step's first pass, for the passes that replay it."""
        return RngSnapshot(self.cuda)

    def forward(self, closure: Closure) -> tuple[Tensor, Any]:
        """One forward pass: the closure's loss and outputs, counted, under the precision's autocast."""
        with torch.enable_grad(), self.loss_scale.autocast():
            result = closure()
        loss, outputs = result if isinstance(result, tuple) else (result, None)
        if not isinstance(loss, Tensor) or loss.numel() != 1:
            raise ConfigError("the closure must return (loss, outputs) with a scalar loss tensor")
        self.counts["fwd"] += 1
        if self.first_loss is None:
            self.first_loss = loss
        return loss, outputs

    def grad(self, output: Tensor, inputs: Sequence[Tensor], grad_outputs: Tensor | None = None,
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
        own = grads[:len(self.params)]
        self.loss_scale.unscale_(own)
        average_(own if sync else [])
        return grads

    def loss_grads(self, closure: Closure, keep_graph: bool = False,
                   sync: bool = True) -> tuple[Tensor, Any, list[Tensor]]:
        """One forward and backward on the batch: loss, outputs and the parameters' gradients."""
        if self.closure_style == "outputs":
            loss, outputs = self.forward(closure)
            return loss, outputs, self.grad(loss, self.params, keep_graph=keep_graph, sync=sync)
        for p in self.params:
            p.grad = None
        with torch.enable_grad(), self.loss_scale.autocast():
            result = closure()  # zeroes, forwards, calls backward, returns the loss (torch's convention)
        loss = result[0] if isinstance(result, tuple) else result
        if not isinstance(loss, Tensor) or loss.numel() != 1:
            raise ConfigError("closure_style='backward': the closure must call backward() and return the scalar loss")
        if self.first_loss is None:
            self.first_loss = loss
        grads = [torch.zeros_like(p) if p.grad is None else p.grad for p in self.params]
        for p in self.params:
            p.grad = None
        self.counts.update({key: n + 1 for key, n in self.counts.items()})
        average_(grads if sync else [])
        return loss, None, grads

    @contextlib.contextmanager
    def replay(self, rng: RngSnapshot) -> Iterator[None]:
        """A later pass on the step's batch: the first pass's RNG state again, BatchNorm statistics frozen."""
        rng.restore()
        with frozen_batchnorm(self.batchnorms):
            yield

    def fisher_squares(self, closure: Closure, rng: RngSnapshot | None, what: str, outputs: Any = None) -> list[Tensor]:
        """Squared gradient of the loss on labels sampled from the model's predictions (one backward).

        `outputs`: the step's own forward, its graph kept (a backward through the same forward, no
        second one); otherwise the forward is replayed on θ with the step's RNG state."""
        if outputs is None:
            assert rng is not None, "a replayed Fisher pass needs the step's RNG snapshot"
            with self.replay(rng):
                _, outputs = self.forward(closure)
        logits = logits_of(outputs, what)
        flat = logits.reshape(-1, logits.shape[-1])
        probs = torch.softmax(flat.detach().float(), dim=-1)  # sampled where it lies: no host copy
        if self.loss_scale.scaling:  # fp16 logits may overflow: sample anyway, the gradient check skips the step
            probs = probs.nan_to_num(1.0, 1.0, 0.0)
        labels = sample_labels(probs, self.label_generator(probs.device))
        grads = self.grad(F.cross_entropy(flat.float(), labels), self.params)  # fp32 loss: scalable
        torch._foreach_mul_(grads, grads)  # the gradients are this pass's own: squared where they lie
        return grads

    def label_generator(self, device: torch.device) -> torch.Generator | None:
        """The label-sampling generator on `device`: each device's is seeded 0 and saved in `state_dict`.
        None on the meta device, which holds shapes and no RNG (tests run steps there to catch host reads)."""
        if device.type == "cpu":
            return self.generator
        if device.type == "meta":
            return None
        key = str(device)
        if key not in self.device_generators:
            self.device_generators[key] = torch.Generator(device=device).manual_seed(0)
        return self.device_generators[key]

    def state_dict(self) -> dict[str, Any]:
        """The engine's slice of `state_dict`: base state, counts, step, loss scale, label generators."""
        return {"base": self.base.state_dict(), "counts": dict(self.counts), "step": self.step,
                "loss_scale": self.loss_scale.state_dict(), "generator": self.generator.get_state(),
                "device_generators": {k: g.get_state() for k, g in self.device_generators.items()}}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.base.load_state_dict(state["base"])
        self.counts = dict(state["counts"])
        self.step = state.get("step", 0)
        if "loss_scale" in state:
            self.loss_scale.load_state_dict(state["loss_scale"])
        # a training stack may move a whole state dict to the device: generator states are read back on the CPU
        self.generator.set_state(state["generator"].cpu())
        for key, generator in state.get("device_generators", {}).items():
            self.label_generator(torch.device(key)).set_state(generator.cpu())
