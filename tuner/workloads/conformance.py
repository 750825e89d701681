"""The workload contract as checks any workload can run: built-in ones in the tests, yours with
`python -m tuner validate SPEC --deep`.

Like Optuna's shared sampler suites: one definition of what a workload must do, run against every
workload, so that a user's class is held to what the trainer, the balancers and `resume` rely on.

- `closure`: the closure returns `(loss, outputs)` with a finite scalar loss that depends on the
  trainable parameters, takes no gradient itself, and `evaluate` returns finite numbers including
  the primary metric and leaves the model in train mode;
- `seed pairing`: one seed gives the same initial weights and the same batches, whichever method
  (optimizer) steps it;
- `state round trip`: a workload restored from `state_dict` takes exactly the steps the original took.

Each check builds the workload afresh with the trial's own `create_workload` and steps it with SGD.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from methods import build_optimizer
from tuner.errors import UserError
from tuner.workloads._registry import create_workload, get_workload

STEPS = 2  # optimizer steps before and after the saved state
LR = 1e-3


class ConformanceError(UserError):
    """A workload breaks the contract: `workload W: check: what` (exit 2 from `validate --deep`)."""


@dataclass(frozen=True)
class Check:
    name: str
    run: Callable[[str, Mapping[str, Any]], None]


def _flat(value: Any) -> list[Tensor]:
    """Every tensor in a batch (nested tuples, lists, dicts), on the CPU, for comparison."""
    if isinstance(value, Tensor):
        return [value.detach().cpu()]
    if isinstance(value, Mapping):
        return [t for k in sorted(value) for t in _flat(value[k])]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _flat(v)]
    return []


def _same(a: list[Tensor], b: list[Tensor]) -> bool:
    return len(a) == len(b) and all(x.shape == y.shape and torch.equal(x, y) for x, y in zip(a, b, strict=True))


def _build(name: str, options: Mapping[str, Any], seed: int = 0) -> Any:
    return create_workload(name, dict(options), seed=seed, device="cpu", num_threads=None)


def _weights(workload: Any) -> list[Tensor]:
    return [p.detach().cpu().clone() for p in workload.trainable_parameters()]


def _steps(workload: Any, optimizer: Any, count: int) -> list[tuple[list[Tensor], float]]:
    """(batch, loss) of `count` optimizer steps."""
    out = []
    for _ in range(count):
        batch = workload.next_batch()
        loss = optimizer.step(workload.closure(batch))
        out.append((_flat(batch), float(loss)))
    return out


def check_closure(name: str, options: Mapping[str, Any]) -> None:
    """The closure and evaluation contract."""
    workload = _build(name, options)
    params = workload.trainable_parameters()
    if not params:
        raise AssertionError("the model has no trainable parameters")
    result = workload.closure(workload.next_batch())()
    if not (isinstance(result, tuple) and len(result) == 2):
        raise AssertionError(f"the closure must return (loss, outputs), got {type(result).__name__}")
    loss = result[0]
    if not (isinstance(loss, Tensor) and loss.numel() == 1 and math.isfinite(float(loss.detach()))):
        raise AssertionError(f"the loss must be a finite scalar tensor, got {loss!r}")
    if not loss.requires_grad:
        raise AssertionError("the loss does not depend on the trainable parameters (no grad_fn)")
    if any(p.grad is not None for p in params):
        raise AssertionError("the closure took gradients itself (the optimizer calls backward)")
    with torch.inference_mode():
        metrics = workload.evaluate()
    metric = workload.primary_metric[0]
    if metric not in metrics:
        raise AssertionError(f"evaluate() lacks the primary metric {metric!r} (it returned {sorted(metrics)})")
    bad = [k for k, v in metrics.items() if not (k.startswith("eval/") and isinstance(v, float) and math.isfinite(v))]
    if bad:
        raise AssertionError(f"evaluate() must return finite floats named eval/..., "
                             f"not {bad[0]!r}: {metrics[bad[0]]!r}")
    if not workload.model.training:
        raise AssertionError("evaluate() left the model in eval mode")


def check_seed_pairing(name: str, options: Mapping[str, Any]) -> None:
    """One seed: the same initial weights and the same batches, whichever optimizer steps the workload.

    (Whether another seed changes anything is the workload's business: a deterministic toy ignores it.)
    """
    runs = []
    for method in ("sgd", "adamw"):
        workload = _build(name, options, 0)
        weights = _weights(workload)
        optimizer = build_optimizer(workload.model, method, lr=LR, pairs=workload.pairs or None)
        batches = [b for b, _ in _steps(workload, optimizer, STEPS + 1)]
        runs.append((weights, batches))
    (w0, b0), (w1, b1) = runs
    if not _same(w0, w1):
        raise AssertionError("seed 0 gave different initial weights in two runs (draw the init from the seed)")
    for i, (x, y) in enumerate(zip(b0, b1, strict=True)):
        if not _same(x, y):
            raise AssertionError(f"seed 0 gave a different batch {i} under sgd and adamw "
                                 "(draw the order from the seed)")


def check_state_round_trip(name: str, options: Mapping[str, Any]) -> None:
    """A workload restored from `state_dict` (in a fresh instance) repeats the original's steps."""
    original = _build(name, options)
    optimizer = build_optimizer(original.model, "sgd", lr=LR, pairs=original.pairs or None)
    _steps(original, optimizer, STEPS)
    state, opt_state = original.state_dict(), copy.deepcopy(optimizer.state_dict())
    expected = _steps(original, optimizer, STEPS)
    torch.manual_seed(12345)  # a fresh process has another global RNG
    restored = _build(name, options)
    resumed_opt = build_optimizer(restored.model, "sgd", lr=LR, pairs=restored.pairs or None)
    restored.load_state_dict(state)
    resumed_opt.load_state_dict(opt_state)
    got = _steps(restored, resumed_opt, STEPS)
    for i, ((xb, xl), (yb, yl)) in enumerate(zip(expected, got, strict=True)):
        if not _same(xb, yb):
            raise AssertionError(f"after load_state_dict, batch {i} differs (keep the sampler's position in the state)")
        if xl != yl:
            raise AssertionError(f"after load_state_dict, step {i} has loss {yl!r}, not {xl!r} "
                                 "(weights, buffers or RNG not restored)")
    if not _same(_weights(original), _weights(restored)):
        raise AssertionError("after load_state_dict the weights end elsewhere")


CHECKS = (Check("closure", check_closure), Check("seed pairing", check_seed_pairing),
          Check("state round trip", check_state_round_trip))


def run_conformance(name: str, options: Mapping[str, Any] | None = None) -> list[str]:
    """Run every check on workload `name` (registered or import target); ConformanceError on the first failure.

    Returns the names of the checks that passed.
    """
    options = dict(options or {})
    label = get_workload(name).name
    passed = []
    for check in CHECKS:
        try:
            check.run(name, options)
        except UserError:
            raise
        except AssertionError as exc:
            raise ConformanceError(f"workload {label}: {check.name}: {exc}") from None
        except Exception as exc:  # the workload itself raised: that is a failed check too
            first = (str(exc).strip().splitlines() or [""])[0]
            raise ConformanceError(f"workload {label}: {check.name}: {type(exc).__name__}: {first}") from None
        passed.append(check.name)
    return passed
