"""One trial's workload and optimizer from its `TrialSetup` and values: the trainable, the preflight and the
benchmarks all build them here (no Ray), so a check takes the path of the trial it checks.

`build_trial` is the trainable's: the trial's workload on its device, then its optimizer. The preflight
builds the workload once (`build_workload`, on the driver's CPU) and one optimizer per point on it
(`build_method`), restoring the workload's state in between.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from methods import build_optimizer
from tuner.hparams import horizon_steps, split_values, trial_hparams
from tuner.trial.precision import check_device, optimizer_kwargs
from tuner.trial.protocol import public_values
from tuner.trial.setup import TrialSetup
from tuner.workloads import Workload, compile_model, create_workload


def trial_seed(setup: TrialSetup, values: Mapping[str, Any]) -> int:
    """The trial's seed: a confirmation run's own (`_seed`), else the spec's."""
    return int(values.get("_seed", setup.seed))


def build_workload(setup: TrialSetup, values: Mapping[str, Any], *, device: str | None = None,
                   threads: int | None = -1) -> Workload:
    """The trial's workload: the spec's options with the values' workload overrides, its seed, compiled where
    the spec says. `device` and `threads` default to the trial's (`setup.device`, `setup.threads`); the
    preflight builds its one workload on the driver's CPU (`threads=None`: torch's default)."""
    _, _, overrides = split_values(public_values(values))
    workload = create_workload(setup.workload, {**setup.workload_options, **overrides},
                               seed=trial_seed(setup, values), device=device or setup.device,
                               num_threads=setup.threads if threads == -1 else threads)
    if setup.compile:
        compile_model(workload)
    return workload


def build_method(setup: TrialSetup, workload: Workload, values: Mapping[str, Any]) -> Any:
    """The trial's optimizer on `workload`'s model: hyperparameters along `tuner.hparams` (defaults, horizon),
    in the spec's precision (the optimizer autocasts every pass it takes and scales fp16's loss)."""
    method, hparams, _ = trial_hparams(public_values(values), setup.trial_grad_evals)
    return build_optimizer(workload.model, method, pairs=workload.pairs or None, **hparams,
                           **optimizer_kwargs(setup.precision))


def trial_horizon(setup: TrialSetup, values: Mapping[str, Any]) -> int:
    """The trial's length in optimizer steps: the horizon of its lr schedule, the one `tuner.hparams` gives
    the method's own schedules (`total_steps`), from the same values."""
    method, hparams, _ = split_values(public_values(values))
    return horizon_steps(method, hparams, setup.trial_grad_evals)


def build_trial(setup: TrialSetup, values: Mapping[str, Any]) -> tuple[Workload, Any, int]:
    """(workload, optimizer, seed) for one trial's values; also used by benchmarks' hand-written scripts."""
    workload = build_workload(setup, values)
    check_device(setup.precision, workload.device)
    return workload, build_method(setup, workload, values), trial_seed(setup, values)
