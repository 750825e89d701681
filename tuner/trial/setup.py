"""What every trial of an experiment gets: `TrialSetup`, built once from the spec by `tuner.spec.trial_setup`,
and its evaluation plan (`EvalPlan`). Plain frozen data (no Ray, no torch): Ray's `tune.with_parameters`
pickles it to every trial, the preflight and the benchmarks build the same one, and nobody who reads it
fills in a default of their own.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from tuner.names import BWD_PASSES, FWD_PASSES, GRAD_EVALS
from tuner.trial.lr_schedule import CONSTANT, LrSchedule

CLOCKS = (GRAD_EVALS, FWD_PASSES, BWD_PASSES, "step")  # counters a plan can be on
FAULT_ENV = "SHARPTUNE_FAULT"  # tests only: JSON {"kill_at_grad_evals": N, "marker": PATH[, "method": M]}


@dataclass(frozen=True)
class EvalPlan:
    """Which reports evaluate the full validation split, which the fixed curve subset, which nothing.

    `full_at`: points on the report counter `clock` (the scheduler's `time_attr`) where a scheduler
    reads the primary metric (ASHA's rungs and `max_t`); the first report at or past each point, and
    the last report, evaluate the full split. `None`: every report does. `curve_every`: spacing on
    `cost/grad_evals` of the curve points evaluated on the subset in between (`None`: no curve points).
    `diag_every`: the same for the diagnostics, which also run wherever the full split is evaluated
    (`None`: at the curve points).
    """

    clock: str = GRAD_EVALS
    full_at: tuple[float, ...] | None = None
    curve_every: float | None = None
    diag_every: float | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> EvalPlan:
        """From `to_dict()` (plain data, as `trial_setup` hands it to every trial)."""
        if not data:
            return cls()
        full, curve, diag = data.get("full_at"), data.get("curve_every"), data.get("diag_every")
        clock = str(data.get("clock", GRAD_EVALS))
        if clock not in CLOCKS:
            full = None  # a clock the trial cannot see ahead (wall time, Ray's iteration): full everywhere
        return cls(clock, None if full is None else tuple(sorted(float(p) for p in full)),
                   None if curve is None else float(curve), None if diag is None else float(diag))

    def to_dict(self) -> dict[str, Any]:
        return {"clock": self.clock, "full_at": None if self.full_at is None else list(self.full_at),
                "curve_every": self.curve_every, "diag_every": self.diag_every}

    def at_point(self, before: float, now: float) -> bool:
        """Whether a report moving the clock from `before` to `now` is one a scheduler reads."""
        return self.full_at is None or any(before < p <= now for p in self.full_at)

    def at_curve(self, before: float, now: float) -> bool:
        """Whether a report moving `cost/grad_evals` from `before` to `now` passes a curve point."""
        return _passes(self.curve_every, before, now)

    def at_diag(self, before: float, now: float) -> bool:
        """Whether such a report passes a diagnostics point."""
        return _passes(self.curve_every if self.diag_every is None else self.diag_every, before, now)


def _passes(every: float | None, before: float, now: float) -> bool:
    return every is not None and math.floor(now / every) > math.floor(before / every)


@dataclass(frozen=True)
class TrialSetup:
    """The spec reduced to what one trial reads (the sampled values come apart, from Ray's config).

    `workload_options` are the spec's, resolved; a trial's own overrides (values that are workload options)
    go on top. `cpu` is the trial's thread count, `gpu > 0` puts it on the accelerator (both per worker; `workers`
> 1: a Ray Train run, `tuner.trial.data_parallel`). `required_metrics`:
    what every report must carry for Ray's metric check (`tuner.trial.protocol.with_required`). `eval_plan`:
    where the trial evaluates the full split, its curve points and diagnostics points (None: every report
    does everything). `lr_schedule`: the spec's, over the trial's steps. `fault`: tests only (`FAULT_ENV`).
    """

    workload: str
    workload_options: Mapping[str, Any]
    trial_grad_evals: int
    eval_every: int
    seed: int = 0
    compile: bool = False
    curve_points: int | None = None
    diag_points: int | None = None
    cpu: float = 1.0
    gpu: float = 0.0
    workers: int = 1
    precision: str = "fp32"
    required_metrics: tuple[str, ...] = ()
    eval_plan: EvalPlan | None = None
    lr_schedule: LrSchedule = CONSTANT
    fault: Mapping[str, Any] | None = field(default=None, compare=False)

    @property
    def threads(self) -> int:
        """torch threads of a trial: its CPU share, at least one."""
        return max(1, int(self.cpu))

    @property
    def device(self) -> str:
        """What `create_workload` gets: the accelerator when the trial holds a GPU share, else the CPU."""
        return "auto" if self.gpu > 0 else "cpu"

    def to_dict(self) -> dict[str, Any]:
        """Plain data (YAML/JSON): the plan as `EvalPlan.to_dict()`, the lr schedule as `LrSchedule.to_dict()`."""
        out = asdict(self)
        out["workload_options"] = dict(self.workload_options)
        out["required_metrics"] = list(self.required_metrics)
        out["eval_plan"] = None if self.eval_plan is None else self.eval_plan.to_dict()
        out["lr_schedule"] = self.lr_schedule.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrialSetup:
        """From `to_dict()`; unknown keys are errors."""
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"TrialSetup: unknown keys {sorted(unknown)}")
        plan, lr = data.get("eval_plan"), data.get("lr_schedule")
        return cls(**{**data, "workload_options": dict(data["workload_options"]),
                      "required_metrics": tuple(data.get("required_metrics", ())),
                      "lr_schedule": lr if isinstance(lr, LrSchedule) else LrSchedule.from_dict(lr),
                      "eval_plan": plan if plan is None or isinstance(plan, EvalPlan) else EvalPlan.from_dict(plan)})
