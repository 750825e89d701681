"""The typed spec: frozen dataclasses with every default filled, and the tables the reader checks against.

Nothing here reads a file; `tuner.spec._reader` and `tuner.spec._sections` build these from YAML.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tuner.errors import UserError
from tuner.names import BWD_PASSES, CURVE_POINTS, DIAG_POINTS, FWD_PASSES, GRAD_EVALS, WALL_S
from tuner.space import Param
from tuner.trial.lr_schedule import CONSTANT, LrSchedule
from tuner.value_rules import plain as _plain

MAX_POINTS = 10_000  # curve or diagnostics points per trial (each lands on a report, at most one per report)
NAME_PATTERN = re.compile(r"[A-Za-z0-9_.-]+")
SCALAR_TYPES = (str, int, float, bool, type(None))

# sampler name -> can it optimise several objectives at once?
SAMPLERS: Mapping[str, bool] = {
    "tpe": True, "random": True, "cmaes": False, "gp": True, "qmc": True, "grid": True, "nsga2": True,
}
# scheduler name -> the keys it takes besides `name`
SCHEDULERS: Mapping[str, tuple[str, ...]] = {
    "asha": ("time_attr", "grace_period", "reduction_factor", "max_t"),
    "hyperband": ("time_attr", "reduction_factor", "max_t"),
    "median": ("time_attr", "grace_period"),
    "fifo": (),
}
# time_attr -> whether max_t may default to budget.trial_grad_evals (counters of passes scale with it)
TIME_ATTRS: Mapping[str, bool] = {
    GRAD_EVALS: True, FWD_PASSES: True, BWD_PASSES: True, "step": True,
    "training_iteration": False, WALL_S: False, "time_total_s": False,
}
TIME_UNITS: Mapping[str, float] = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
TRACKING_SCHEMES = ("sqlite", "http", "https", "file", "postgresql", "mysql")
PARAM_TYPES = ("float", "int", "categorical")
MAX_CPU, MAX_GPU, MAX_WORKERS = 512.0, 64.0, 1024



class SpecError(UserError):
    """A bad spec: one line `FILE:LINE: FIELD: problem (allowed: …)`."""

    def __init__(self, file: str, line: int | None, field_path: str, problem: str,
                 allowed: str | None = None) -> None:
        where = f"{file}:{line}" if line else file
        text = f"{where}: {field_path}: {problem}" if field_path else f"{where}: {problem}"
        if allowed:
            text += f" (allowed: {allowed})"
        super().__init__(" ".join(text.split()))
        self.file, self.line, self.field, self.problem = file, line, field_path, problem


# --- the typed model ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Objective:
    """A metric and its direction."""

    name: str
    goal: str  # maximize | minimize
    target: float | None = None  # `metric.target`: the value whose cost each method is compared at (issue 31)

    @property
    def mode(self) -> str:
        """Ray Tune's spelling of the goal."""
        return "max" if self.goal == "maximize" else "min"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "goal": self.goal, **({"target": self.target} if self.target is not None else {})}



@dataclass(frozen=True)
class Workload:
    name: str
    options: Mapping[str, Any]  # resolved by tuner.workloads.resolve_options (defaults filled)
    compile: bool = False  # the model under torch.compile in every trial (tuner.workloads._compile)


@dataclass(frozen=True)
class Sampler:
    name: str
    seed: int


@dataclass(frozen=True)
class Scheduler:
    name: str
    time_attr: str = GRAD_EVALS
    grace_period: int | None = None
    reduction_factor: float | None = None
    max_t: int | None = None

    @property
    def clock(self) -> str:
        """The report counter this scheduler reads, and the trial's evaluation plan is on: `time_attr`, or the
        budget's own counter for fifo (which has none and reads only the end)."""
        return GRAD_EVALS if self.name == "fifo" else self.time_attr

    def read_at(self) -> tuple[float, ...] | None:
        """Where on `clock` it reads the primary metric: ASHA its rungs (one bracket: grace_period * rf^k up to
        max_t) and max_t (a spare point costs only time), fifo only the end (none), the others every report (None)."""
        if self.name == "fifo":
            return ()
        if self.name != "asha":
            return None
        assert self.grace_period is not None and self.reduction_factor is not None and self.max_t is not None
        rungs = [self.grace_period * self.reduction_factor ** k for k in range(64)]
        return tuple(sorted({*(r for r in rungs if r <= self.max_t * (1 + 1e-9)), float(self.max_t)}))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, **{k: getattr(self, k) for k in SCHEDULERS[self.name]}}


@dataclass(frozen=True)
class Budget:
    num_samples: int  # trials in all; with split per_method each method gets num_samples / n (within one)
    max_concurrent_trials: int
    time_s: float | None  # wall-clock limit of the whole search; None: none
    trial_grad_evals: int  # budget of one trial, in gradient evaluations
    eval_every: int  # steps between reports
    curve_points: int = CURVE_POINTS  # subset-evaluated curve points per trial
    diag_points: int = DIAG_POINTS  # diagnostics points per trial, beside the scheduler's points and the end
    # a trial silent this long is stopped as errored; None: a generous multiple of the slowest report
    # interval seen so far, never less than a floor (tuner.run.stall)
    stall_timeout_s: float | None = None
    # per_method: one study per method, equal trials each, ASHA within a method; shared: one study over
    # `method` as a categorical, one ASHA across methods (tuner.run.split)
    split: str = "shared"

    def to_dict(self) -> dict[str, Any]:
        return {"num_samples": self.num_samples, "split": self.split,
                "max_concurrent_trials": self.max_concurrent_trials,
                "time": self.time_s, "trial_grad_evals": self.trial_grad_evals, "eval_every": self.eval_every,
                "curve_points": self.curve_points, "diag_points": self.diag_points,
                "stall_timeout": self.stall_timeout_s}


@dataclass(frozen=True)
class Resources:
    """Per trial: `workers` processes (one Ray Train run when more than one), each with `cpu` CPUs and `gpu` GPUs."""

    cpu: float
    gpu: float
    workers: int = 1


@dataclass(frozen=True)
class Confirm:
    """Re-runs of the winners: every seed x every combination of the stress levels (workload options)."""

    top_k: int
    seeds: tuple[int, ...]
    stress: Mapping[str, tuple[Any, ...]]  # workload option -> levels (`label_noise: [...]` is one)

    @property
    def label_noise(self) -> tuple[Any, ...]:
        """The label-noise levels (the `confirm.label_noise` key of older specs)."""
        return tuple(self.stress.get("label_noise", ()))

    def conditions(self) -> list[dict[str, Any]]:
        """Every combination of the stress levels (`[{}]` without any): what each seed runs under."""
        out: list[dict[str, Any]] = [{}]
        for name, levels in self.stress.items():
            out = [{**c, name: v} for c in out for v in levels]
        return out

    def describe(self) -> str:
        """`label noise [0.0, 0.2] x depth [1, 2]` for the header and the progress lines ('' without stress)."""
        return " x ".join(f"{k.replace('_', ' ')} {list(v)}" for k, v in self.stress.items())

    def to_dict(self) -> dict[str, Any]:
        return {"top_k": self.top_k, "seeds": list(self.seeds),
                "stress": {k: _plain(list(v)) for k, v in self.stress.items()}}


@dataclass(frozen=True)
class Constraint:
    """A bound on a metric that a feasible trial meets (`constraints:`; issue 15)."""

    metric: str
    min: float | None = None
    max: float | None = None

    def violation(self, value: float) -> float:
        """How far `value` is outside the bound (<= 0: within), Optuna's constraint convention."""
        over = value - self.max if self.max is not None else float("-inf")
        under = self.min - value if self.min is not None else float("-inf")
        return max(over, under)

    def to_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, **({"min": self.min} if self.min is not None else {}),
                **({"max": self.max} if self.max is not None else {})}


@dataclass(frozen=True)
class Claim:
    """What a claim spec reproduces (`claim:`; issue 32): the quantity, per setting, beside the paper's number.

    `measure` is `final` (each run's last `metric`, averaged over the runs of a setting) or `to_target`
    (the grad evals each method's winner takes to reach the summary's target, and its ratio to the first
    method's). `expect[method]` is the claimed value: a number, a (low, high) band, or the paper's words.
    """

    metric: str
    source: str
    by: tuple[str, ...] = ()
    measure: str = "final"
    expect: Mapping[str, float | tuple[float, float] | str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "source": self.source, "by": list(self.by), "measure": self.measure,
                "expect": {m: list(v) if isinstance(v, tuple) else v for m, v in self.expect.items()}}


@dataclass(frozen=True, eq=False)
class Spec:
    """A validated experiment; `space[method]` is what the tuner samples for that method."""

    path: str  # absolute path of the spec file
    name: str
    description: str
    metric: Objective
    workload: Workload
    methods: tuple[str, ...]
    parameters: Mapping[str, Param]  # as written in the spec
    space: Mapping[str, Mapping[str, Param]]  # per method: defaults + overrides, filtered, in sampling order
    defaults: Mapping[str, Mapping[str, Any]]  # per method: value of each name when not sampled (for `when`)
    sampler: Sampler
    scheduler: Scheduler
    budget: Budget
    resources: Resources
    seed: int
    tracking_uri: str
    storage_path: str
    objectives: tuple[Objective, ...]
    confirm: Confirm | None
    max_failures: int
    precision: str = "fp32"
    # study tools (tuner.spec._study)
    enqueue: tuple[Mapping[str, Any], ...] = ()
    warm_start: str | None = None
    constraints: tuple[Constraint, ...] = ()
    lr_schedule: LrSchedule = CONSTANT  # the trial's lr schedule (tuner.trial.lr_schedule), not a method's `schedule`
    claim: Claim | None = None  # what a claim spec reproduces (tuner.spec._claim)

    @property
    def experiment_dir(self) -> str:
        """Where this experiment keeps its results: `<storage>/<name>`."""
        return os.path.join(self.storage_path, self.name)

    def to_dict(self, include_space: bool = True) -> dict[str, Any]:
        """Resolved config as plain data; with include_space=False it loads again as the same spec."""
        out: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "metric": self.metric.to_dict(),
            "workload": {"name": self.workload.name, "options": _plain(dict(self.workload.options)),
                         "compile": self.workload.compile},
            "methods": list(self.methods),
            "parameters": {k: p.to_dict() for k, p in self.parameters.items()},
            "sampler": {"name": self.sampler.name, "seed": self.sampler.seed},
            "scheduler": self.scheduler.to_dict(),
            "budget": self.budget.to_dict(),
            "resources": {"cpu": self.resources.cpu, "gpu": self.resources.gpu, "workers": self.resources.workers},
            "seed": self.seed,
            "tracking": {"uri": self.tracking_uri},
            "storage": {"path": self.storage_path},
            "objectives": [o.to_dict() for o in self.objectives] or None,
            "confirm": self.confirm.to_dict() if self.confirm else None,
            "max_failures": self.max_failures,
            "precision": self.precision,
            "enqueue": [dict(c) for c in self.enqueue] or None,
            "warm_start": {"from": self.warm_start} if self.warm_start else None,
            "constraints": [c.to_dict() for c in self.constraints] or None,
            "lr_schedule": self.lr_schedule.to_dict(),
            "claim": self.claim.to_dict() if self.claim else None,
        }
        if not self.description:  # the default; an empty string would not load again
            del out["description"]
        if include_space:
            out["space"] = {m: {k: p.to_dict() for k, p in s.items()} for m, s in self.space.items()}
        return out



SPLITS = ("per_method", "shared")  # `budget.split`; the default is per_method for two methods or more
TOP_KEYS = ("name", "description", "metric", "workload", "methods", "parameters", "sampler", "scheduler",
            "budget", "resources", "seed", "tracking", "storage", "objectives", "confirm", "max_failures",
            "enqueue", "warm_start", "constraints", "precision", "lr_schedule", "claim")
