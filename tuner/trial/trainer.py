"""The training loop shared by every trial: steps a workload with a `methods` optimizer and reports.

`Trainer.run()` yields a metrics dict every `eval_every` steps and a final one, with the stable names
of DESIGN.md. It stops at a compute-fair budget (`cost/grad_evals >= max_grad_evals`, so SAM gets half
the steps of SGD) or a step count. Diagnostics and evaluation run off the step clock. A non-finite
loss, gradient or parameter ends the run: a last report with `diverged = 1.0`, then `Diverged`.

Evaluation happens where it is used (`EvalPlan`): the full validation split on the reports a scheduler
reads (the first report at or past each of its points, and the last report), the workload's fixed
subset at the curve points in between (`eval_subset/...`, labelled with `eval_subset/examples`), and
nothing on the other reports. Diagnostics (a power iteration costs tens of gradients) run on their own,
sparser clock: at the reports a scheduler reads and at `budget.diag_points` points spread over the budget.
Without a plan every report evaluates the full split and runs the diagnostics.

On an accelerator the step loop never waits on the device: the loss stays there until a report, and
finiteness is accumulated on the device and read at each report. In between, every `CHECK_EVERY` steps,
CUDA copies the flags to pinned host memory behind the step (non-blocking) and the loop looks at them
once the copy is done (`Event.query`, no wait), so a diverged run stops within about 2 x CHECK_EVERY
steps without the host ever waiting; other accelerators read the flags then.

With an `lr_schedule` (`tuner.trial.lr_schedule`), every optimizer step is followed by one step of its
`LambdaLR` over `horizon` optimizer steps (the trial's length, `tuner.trial.build.trial_horizon`); its
state is in `state_dict`. The constant schedule builds nothing: training is exactly as without one.
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
from torch.optim.lr_scheduler import LambdaLR

from methods import _device
from tuner.errors import RuntimeFailure
from tuner.names import BWD_PASSES, FWD_PASSES, GRAD_EVALS, PEAK_MEM_MB, STEP_TIME_MS, TRAIN_LOSS, TRAIN_S, WALL_S
from tuner.trial.lr_schedule import CONSTANT, LrSchedule
from tuner.trial.lr_scheduler import lr_scheduler
from tuner.trial.precision import autocast
from tuner.trial.setup import EvalPlan

CHECK_EVERY = 16  # accelerator path: steps between looks at the finiteness flags (CUDA: without a wait)
FULL, SUBSET, NONE = "full", "subset", "none"


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
    before the base update, docs/METHODS.md). `diag_every` puts diagnostics on the step clock; without it
    they run at every report, or, with a `plan`, at the reports a scheduler reads and its diagnostics points.
    After each report `last_at_point` says whether it was one a scheduler reads (trial checkpoints go
    there) and `seconds` holds the time spent evaluating and in diagnostics, for benchmarks.
    `lr_schedule` scales every param group's lr step by step over `horizon` optimizer steps (required
    unless the schedule is constant); `lr_scheduler` is its `LambdaLR` (None when constant).
    """

    def __init__(self, workload: Any, optimizer: Any, *, eval_every: int, max_grad_evals: float | None = None,
                 max_steps: int | None = None, diag_every: int | None = None,
                 grad_clip: float | None = None, plan: EvalPlan | None = None, precision: str = "fp32",
                 lr_schedule: LrSchedule = CONSTANT, horizon: int | None = None) -> None:
        if max_grad_evals is None and max_steps is None:
            raise ValueError("Trainer needs max_grad_evals or max_steps (or both)")
        if eval_every < 1 or (diag_every is not None and diag_every < 1):
            raise ValueError("eval_every and diag_every must be >= 1")
        self.workload, self.optimizer = workload, optimizer
        self.precision = precision  # evaluation runs under autocast; the training passes are the optimizer's
        self.eval_every, self.diag_every, self.plan = eval_every, diag_every, plan
        self.max_grad_evals, self.max_steps = max_grad_evals, max_steps
        if grad_clip is not None:
            current = optimizer.hparams.get("grad_clip")
            if current is not None and current != grad_clip:
                raise ValueError(f"grad_clip={grad_clip} conflicts with the optimizer's grad_clip={current}")
            optimizer.hparams["grad_clip"] = grad_clip
        self.lr_scheduler: LambdaLR | None = None  # the constant schedule: nothing is built, nothing changes
        if not lr_schedule.is_constant:
            if horizon is None:
                raise ValueError(f"lr_schedule {lr_schedule.name!r} needs the trial's horizon in optimizer steps")
            self.lr_scheduler = lr_scheduler(optimizer, lr_schedule, horizon)
        self.step = 0
        self._wall = 0.0  # seconds spent in earlier run() calls (and before a resume)
        self._train_s = 0.0  # seconds inside optimizer steps, all runs: the share of a trial spent training
        self._losses: list[torch.Tensor] = []  # detached, on the device until a report
        self._times: list[float] = []
        self._events: list[tuple[Any, Any]] = []  # CUDA: (start, end) of the steps since the last settle
        self._diag: dict[str, float] = {}
        self._clock = {"plan": 0.0, "curve": 0.0}  # the plan's clocks at the last report
        self._params = [p for g in optimizer.param_groups for p in g["params"] if p.requires_grad]
        self._device = next(iter(workload.model.parameters())).device
        self._host_free = _device.on_accelerator(self._device)
        self._flags: torch.Tensor | None = None  # accelerator path: any non-finite loss, grad, param so far
        self._peeking = self._device.type == "cuda"  # CUDA: the flags copied to the host behind the steps
        self._peek: tuple[torch.Tensor, Any] | None = None  # (pinned host copy of the flags, its copy's event)
        self.last_at_point = True
        self.seconds = {"eval": 0.0, "eval_subset": 0.0, "diag": 0.0}

    # ------------------------------------------------------------------ loop
    def _done(self) -> bool:
        grad_evals = self.optimizer.counts["grad_evals"]
        return (self.max_steps is not None and self.step >= self.max_steps) or \
            (self.max_grad_evals is not None and grad_evals >= self.max_grad_evals)

    def _one_step(self) -> torch.Tensor:
        batch = self.workload.next_batch()
        closure = self.workload.closure(batch)  # the optimizer autocasts each pass it takes (built with precision=)
        if self._device.type == "cuda":  # timed on the device: no wait here, read at the next report
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            loss = self.optimizer.step(closure)
            end.record()
            self._events.append((start, end))
        else:
            begin = time.perf_counter()
            loss = self.optimizer.step(closure)
            elapsed = time.perf_counter() - begin
            self._times.append(elapsed * 1e3)
            self._train_s += elapsed
        if self.lr_scheduler is not None:
            self.lr_scheduler.step()  # the next step's lr: a host float, no wait on the device
        self.step += 1
        return loss.detach()

    def _settle(self) -> None:
        """Fold the device-timed steps into the step times (one wait, at a report)."""
        if self._events:
            self._events[-1][1].synchronize()
            for start, end in self._events:
                ms = start.elapsed_time(end)
                self._times.append(ms)
                self._train_s += ms / 1e3
            self._events = []

    def _finiteness(self, loss: torch.Tensor) -> torch.Tensor:
        """Not-finite flags of (loss, gradient norm, parameter norm), computed on the device."""
        with torch.no_grad():
            grads = [p.grad for p in self._params if p.grad is not None]
            grad_norm = _norm_sum(grads) if grads else torch.zeros((), device=self._device)
            return ~torch.isfinite(torch.stack([loss.float().reshape(()), grad_norm, _norm_sum(self._params)]))

    def _non_finite(self, loss: torch.Tensor, *, read: bool) -> str | None:
        """What became non-finite, if anything; on the accelerator path only read when `read` (or, on CUDA,
        when a copy of the flags that has already reached the host shows one)."""
        flags = self._finiteness(loss)
        if self._host_free:
            self._flags = flags if self._flags is None else self._flags | flags
            if not read and self._peeking:
                read = self._peek_flags()
            if not read:
                return None
            flags, self._flags, self._peek = self._flags, None, None
        bad_loss, bad_grad, bad_param = flags.tolist()
        if bad_loss:
            return f"loss is {float(loss)}"
        if bad_grad:
            return "gradient norm is not finite"
        if bad_param:
            return "a parameter is not finite"
        return None

    def _peek_flags(self) -> bool:
        """CUDA: whether a copy of the flags that has reached the host shows a non-finite value; every
        CHECK_EVERY steps a new copy is queued behind the step. Never waits on the device."""
        if self._peek is not None and self._peek[1].query():
            host, self._peek = self._peek[0], None
            if bool(host.any()):  # host memory: no sync
                return True
        if self._peek is None and self.step % CHECK_EVERY == 0 and self._flags is not None:
            host = torch.empty(self._flags.shape, dtype=self._flags.dtype, pin_memory=True)
            host.copy_(self._flags, non_blocking=True)
            event = torch.cuda.Event()
            event.record()
            self._peek = (host, event)
        return False

    def _evaluate(self, kind: str) -> dict[str, float]:
        if kind == NONE:
            return {}
        begin = time.perf_counter()
        with torch.inference_mode(), autocast(self._device, self.precision):
            metrics = self.workload.evaluate(subset=True) if kind == SUBSET else self.workload.evaluate()
        if kind == SUBSET:
            metrics = {"eval_subset/" + k.removeprefix("eval/"): v for k, v in metrics.items()}
            metrics["eval_subset/examples"] = float(self.workload.eval_subset)
        self.seconds["eval_subset" if kind == SUBSET else "eval"] += time.perf_counter() - begin
        return metrics

    def _diagnostics(self) -> None:
        begin = time.perf_counter()
        self._diag = self.workload.diagnostics(self.optimizer)
        self.seconds["diag"] += time.perf_counter() - begin

    def _report(self, wall_start: float, *, final_diag: bool = True, final: bool = True) -> dict[str, float]:
        """Evaluation, diagnostics and cost since the last report (evaluation is off the step clock)."""
        self._settle()
        counts = self.optimizer.counts
        report = {
            "step": float(self.step),
            TRAIN_LOSS: float(torch.stack([x.double() for x in self._losses]).mean())
            if self._losses else math.nan,
            GRAD_EVALS: float(counts["grad_evals"]),
            FWD_PASSES: float(counts["fwd"]),
            BWD_PASSES: float(counts["bwd"]),
        }
        plan = self.plan or EvalPlan()
        now = {"plan": report.get(plan.clock, 0.0), "curve": report[GRAD_EVALS]}
        at_point = final or self.plan is None or plan.at_point(self._clock["plan"], now["plan"])
        at_curve = self.plan is not None and plan.at_curve(self._clock["curve"], now["curve"])
        at_diag = self.plan is not None and plan.at_diag(self._clock["curve"], now["curve"])
        self._clock = now
        kind = FULL if at_point or getattr(self.workload, "eval_subset", None) is None else \
            SUBSET if at_curve else NONE
        if self.diag_every is None and final_diag and (self.plan is None or at_point or at_diag):
            self._diagnostics()
        report.update(self._evaluate(kind))
        report.update(self._diag)
        report.update({
            STEP_TIME_MS: statistics.median(self._times) if self._times else math.nan,
            WALL_S: self._wall + time.perf_counter() - wall_start,
            TRAIN_S: self._train_s,
            PEAK_MEM_MB: _peak_mem_mb(self._device),
        })
        self._losses, self._times = [], []
        self.last_at_point = at_point
        return report

    def final_report(self) -> dict[str, float]:
        """A report of the state as it is now (a trial resumed at its end reports once more to finish)."""
        return self._report(time.perf_counter())

    def run(self) -> Iterator[dict[str, float]]:
        """Train until the budget is spent, yielding a report every `eval_every` steps and at the end."""
        wall_start = time.perf_counter()
        reported = self.step
        try:
            while not self._done():
                loss = self._one_step()
                self._losses.append(loss)
                reporting = self.step % self.eval_every == 0
                done = self._done()
                check = self.step % CHECK_EVERY == 0 and not self._peeking
                problem = self._non_finite(loss, read=reporting or done or check)
                if problem:
                    report = self._report(wall_start, final_diag=False)
                    report["diverged"] = 1.0
                    yield report
                    raise Diverged(self.step, problem)
                if self.diag_every is not None and self.step % self.diag_every == 0:
                    self._diagnostics()
                if reporting:
                    reported = self.step
                    yield self._report(wall_start, final=done)
            if reported != self.step or self.step == 0:
                yield self._report(wall_start)
        finally:
            self._wall += time.perf_counter() - wall_start

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """Workload (model, data position, RNG), optimizer and loop state: a resumed run is exact."""
        self._settle()
        return {
            "workload": self.workload.state_dict(),
            "optimizer": copy.deepcopy(self.optimizer.state_dict()),  # torch hands out live tensors
            "step": self.step,
            "wall_s": self._wall,
            "train_s": self._train_s,
            "clock": dict(self._clock),
            "lr_scheduler": None if self.lr_scheduler is None else self.lr_scheduler.state_dict(),
            "pending": {"losses": [x.cpu() for x in self._losses], "times": list(self._times),
                        "diag": dict(self._diag)},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from `state_dict()` of a trainer on the same workload, options, seed and method."""
        self.workload.load_state_dict(state["workload"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step, self._wall = int(state["step"]), float(state["wall_s"])
        self._train_s = float(state.get("train_s", 0.0))
        self._clock = dict(state.get("clock", {"plan": 0.0, "curve": 0.0}))
        if self.lr_scheduler is not None:
            self.lr_scheduler.load_state_dict(state["lr_scheduler"])
            for group, lr in zip(self.optimizer.param_groups, self.lr_scheduler.get_last_lr(), strict=True):
                group["lr"] = lr  # the next step's lr, whether or not the optimizer's state carried it
        self._losses = [torch.as_tensor(x).to(self._device) for x in state["pending"]["losses"]]
        self._times = list(state["pending"]["times"])
        self._diag = dict(state["pending"]["diag"])
