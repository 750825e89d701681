"""`trial_setup(spec)`: the one `TrialSetup` of an experiment, what every trial, the preflight and the
benchmarks get (`tuner.trial.setup`)."""

from __future__ import annotations

import json
import os

from tuner.spec.model import Spec
from tuner.trial.setup import FAULT_ENV, EvalPlan, TrialSetup

RAY_COUNTERS = ("training_iteration", "time_total_s")  # Ray adds them to every report itself


def trial_setup(spec: Spec) -> TrialSetup:
    """What every trial of `spec` gets (through `tune.with_parameters`).

    The evaluation plan is on the scheduler's clock (`Scheduler.clock`): the trial evaluates the full
    validation split where the scheduler reads the primary metric (`Scheduler.read_at`: ASHA's rungs and
    max_t; fifo only the end; HyperBand and the median rule every report), the workload's subset at
    `budget.curve_points` curve points in between, diagnostics at those and `budget.diag_points` more.
    """
    s, budget = spec.scheduler, spec.budget
    required = {spec.metric.name, *(o.name for o in spec.objectives)}
    if s.name != "fifo":
        required.add(s.time_attr)
    read_at = s.read_at()
    plan = EvalPlan.from_dict({"clock": s.clock, "full_at": None if read_at is None else list(read_at),
                               "curve_every": budget.trial_grad_evals / budget.curve_points,
                               "diag_every": budget.trial_grad_evals / budget.diag_points})
    fault = os.environ.get(FAULT_ENV)
    return TrialSetup(
        workload=spec.workload.name, workload_options=dict(spec.workload.options),
        trial_grad_evals=budget.trial_grad_evals, eval_every=budget.eval_every, seed=spec.seed,
        compile=spec.workload.compile, curve_points=budget.curve_points, diag_points=budget.diag_points,
        cpu=spec.resources.cpu, gpu=spec.resources.gpu, workers=spec.resources.workers, precision=spec.precision,
        required_metrics=tuple(sorted(required - set(RAY_COUNTERS))), eval_plan=plan, lr_schedule=spec.lr_schedule,
        fault=json.loads(fault) if fault else None)
