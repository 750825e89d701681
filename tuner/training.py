"""The training loop shared by every trial: steps a workload with a `methods` optimizer and reports.

`Trainer.run()` yields a metrics dict every `eval_every` steps and a final one, with the stable names
of DESIGN.md. It stops at a compute-fair budget (`cost/grad_evals >= max_grad_evals`, so SAM gets half
the steps of SGD) or a step count. Diagnostics and evaluation run off the step clock. A non-finite
loss, gradient or parameter ends the run: a last report with `diverged = 1.0`, then `Diverged`.
"""

from __future__ import annotations

import copy
import math
import resource
import statistics
import sys
import time
from collections.abc import Iterator
from typing import Any

import torch

from tuner.errors import RuntimeFailure


class Diverged(RuntimeFailure):
    """The loss, the gradient norm or a parameter became NaN/inf (the trial's status is `diverged`)."""

    def __init__(self, step: int, what: str) -> None:
        super().__init__(f"diverged at step {step}: {what}")
        self.step, self.what = step, what


def _peak_mem_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def _norm_sum(tensors: list[torch.Tensor]) -> torch.Tensor:
    """Sum of the tensors' norms in float32 (inf or NaN as soon as any entry is), fused per dtype."""
    return torch.stack([n.float() for n in torch._foreach_norm(tensors)]).sum()


class Trainer:
    """Runs `workload` with `optimizer` (a `methods` optimizer) and reports metrics.

    `grad_clip` is handed to the optimizer (its `grad_clip` hyperparameter clips the final gradient
    before the base update, METHODS.md); `diag_every=None` computes diagnostics at every report.
    """

    def __init__(self, workload: Any, optimizer: Any, *, eval_every: int, max_grad_evals: float | None = None,
                 max_steps: int | None = None, diag_every: int | None = None,
                 grad_clip: float | None = None) -> None:
        if max_grad_evals is None and max_steps is None:
            raise ValueError("Trainer needs max_grad_evals or max_steps (or both)")
        if eval_every < 1 or (diag_every is not None and diag_every < 1):
            raise ValueError("eval_every and diag_every must be >= 1")
        self.workload, self.optimizer = workload, optimizer
        self.eval_every, self.diag_every = eval_every, diag_every
        self.max_grad_evals, self.max_steps = max_grad_evals, max_steps
        if grad_clip is not None:
            current = optimizer.hparams.get("grad_clip")
            if current is not None and current != grad_clip:
                raise ValueError(f"grad_clip={grad_clip} conflicts with the optimizer's grad_clip={current}")
            optimizer.hparams["grad_clip"] = grad_clip
        self.step = 0
        self._wall = 0.0  # seconds spent in earlier run() calls (and before a resume)
        self._train_s = 0.0  # seconds inside optimizer steps, all runs: the share of a trial spent training
        self._losses: list[float] = []
        self._times: list[float] = []
        self._diag: dict[str, float] = {}
        self._params = [p for g in optimizer.param_groups for p in g["params"] if p.requires_grad]
        self._device = next(iter(workload.model.parameters())).device

    # ------------------------------------------------------------------ loop
    def _done(self) -> bool:
        grad_evals = self.optimizer.counts["grad_evals"]
        return (self.max_steps is not None and self.step >= self.max_steps) or \
            (self.max_grad_evals is not None and grad_evals >= self.max_grad_evals)

    def _sync(self) -> None:
        if self._device.type == "cuda":
            torch.cuda.synchronize(self._device)

    def _one_step(self) -> float:
        batch = self.workload.next_batch()
        closure = self.workload.closure(batch)
        self._sync()
        start = time.perf_counter()
        loss = self.optimizer.step(closure)
        self._sync()
        elapsed = time.perf_counter() - start
        self._times.append(elapsed * 1e3)
        self._train_s += elapsed
        self.step += 1
        return float(loss)

    def _non_finite(self, loss: float) -> str | None:
        if not math.isfinite(loss):
            return f"loss is {loss}"
        with torch.no_grad():  # two fused norms and one sync per step: this runs on every step
            grads = [p.grad for p in self._params if p.grad is not None]
            grad_norm = _norm_sum(grads) if grads else torch.zeros((), device=self._device)
            grad_ok, param_ok = torch.isfinite(torch.stack([grad_norm, _norm_sum(self._params)])).tolist()
        if not grad_ok:
            return "gradient norm is not finite"
        if not param_ok:
            return "a parameter is not finite"
        return None

    def _report(self, wall_start: float, *, final_diag: bool = True) -> dict[str, float]:
        """Evaluation, diagnostics and cost since the last report (evaluation is off the step clock)."""
        if self.diag_every is None and final_diag:
            self._diag = self.workload.diagnostics(self.optimizer)
        counts = self.optimizer.counts
        report = {
            "step": float(self.step),
            "train/loss": statistics.fmean(self._losses) if self._losses else math.nan,
            **self.workload.evaluate(),
            **self._diag,
            "cost/grad_evals": float(counts["grad_evals"]),
            "cost/fwd_passes": float(counts["fwd"]),
            "cost/bwd_passes": float(counts["bwd"]),
            "cost/step_time_ms": statistics.median(self._times) if self._times else math.nan,
            "cost/wall_s": self._wall + time.perf_counter() - wall_start,
            "cost/train_s": self._train_s,
            "cost/peak_mem_mb": _peak_mem_mb(self._device),
        }
        self._losses, self._times = [], []
        return report

    def run(self) -> Iterator[dict[str, float]]:
        """Train until the budget is spent, yielding a report every `eval_every` steps and at the end."""
        wall_start = time.perf_counter()
        reported = self.step
        try:
            while not self._done():
                loss = self._one_step()
                self._losses.append(loss)
                problem = self._non_finite(loss)
                if problem:
                    report = self._report(wall_start, final_diag=False)
                    report["diverged"] = 1.0
                    yield report
                    raise Diverged(self.step, problem)
                if self.diag_every is not None and self.step % self.diag_every == 0:
                    self._diag = self.workload.diagnostics(self.optimizer)
                if self.step % self.eval_every == 0:
                    reported = self.step
                    yield self._report(wall_start)
            if reported != self.step or self.step == 0:
                yield self._report(wall_start)
        finally:
            self._wall += time.perf_counter() - wall_start

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """Workload (model, data position, RNG), optimizer and loop state: a resumed run is exact."""
        return {
            "workload": self.workload.state_dict(),
            "optimizer": copy.deepcopy(self.optimizer.state_dict()),  # torch hands out live tensors
            "step": self.step,
            "wall_s": self._wall,
            "train_s": self._train_s,
            "pending": {"losses": list(self._losses), "times": list(self._times), "diag": dict(self._diag)},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from `state_dict()` of a trainer on the same workload, options, seed and method."""
        self.workload.load_state_dict(state["workload"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step, self._wall = int(state["step"]), float(state["wall_s"])
        self._train_s = float(state.get("train_s", 0.0))
        self._losses = list(state["pending"]["losses"])
        self._times = list(state["pending"]["times"])
        self._diag = dict(state["pending"]["diag"])
