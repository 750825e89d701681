"""The report protocol of a trial: what the searcher, the tracker, the progress lines and the results read.

A trial's *values* are one plain dict: `{"method": m, <hyperparameters>, <workload overrides>}` and,
for runs the platform adds itself, private keys that start with `_` (`_seed`, `_phase`, `_rank`,
`_source`, `ADOPT_KEY`; a confirmation run's values arrive wrapped as `{"_point": values}`). `trial_values` unwraps
them, `public_values` drops the private keys, `tuner.hparams.split_values` splits the rest.

- `COMPLETE_KEY = 1.0` on the report that spent the whole budget (ASHA may stop a trial on that very
  report, so the marker must ride on it, not on a later one);
- `DIVERGED_KEY = 1.0` on the last report of a diverged trial, which then ends normally (no retry);
- `FILLED_KEY`: the required metrics a report did not compute, comma-separated; they are NaN there
  only because Ray insists every report carries them (ASHA never reads them: it reads the first
  report at or past each rung, which evaluates the full split), and the tracker does not log them;
- anything else that ends a trial is a prune (scheduler, time budget) or an error (an exception).

The metric names every report carries (DESIGN.md section 2) and the report keys above are defined here
once; every module imports them (tests/architecture/test_imports.py finds any literal copy). A
workload's own `eval/...` and `diag/...` names are the workload's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

# --- metric names of every report (the trainer writes them; the scheduler, tracker and results read them)
GRAD_EVALS = "cost/grad_evals"  # the budget's counter, the MLflow step, fifo's clock
FWD_PASSES = "cost/fwd_passes"
BWD_PASSES = "cost/bwd_passes"
STEP_TIME_MS = "cost/step_time_ms"
WALL_S = "cost/wall_s"
TRAIN_S = "cost/train_s"  # seconds inside optimizer steps
PEAK_MEM_MB = "cost/peak_mem_mb"
TRAIN_LOSS = "train/loss"
COST_METRICS = (GRAD_EVALS, FWD_PASSES, BWD_PASSES, STEP_TIME_MS, WALL_S, TRAIN_S, PEAK_MEM_MB)

# what a trial's closure runs under (spec `precision:`, tuner.trial.precision; methods' own list agrees)
PRECISIONS = ("fp32", "bf16", "fp16")

CURVE_POINTS = 8  # default subset-evaluated curve points per trial (spec: budget.curve_points)
DIAG_POINTS = 4  # default diagnostics points per trial, beside the reports a scheduler reads (budget.diag_points)
COMPLETE_KEY = "sharptune/complete"
DIVERGED_KEY = "diverged"
NODE_KEY = "sharptune/node_id"
DEVICE_KEY = "sharptune/device"  # the torch device a trial trains on (cpu without CUDA, even with a GPU share)
GPU_KEY = "sharptune/gpu_ids"  # the GPUs Ray assigned it (its CUDA_VISIBLE_DEVICES), "" for none
FILLED_KEY = "sharptune/filled"
REPLAYED_KEY = "sharptune/replayed"  # 1.0 on the report of a trial replayed from the journal on resume
METRIC_PREFIXES = ("eval/", "eval_subset/", "train/", "cost/", "diag/")
# a resumed search's trial that takes over an Optuna trial its killed driver asked (tuner.run.searcher):
# the Ray trial id that trial had, the key of its record in the trainable's `finished` map
ADOPT_KEY = "_adopt"

COMPLETED, PRUNED, DIVERGED, ERRORED = "completed", "pruned", "diverged", "errored"
OUTCOMES = (COMPLETED, PRUNED, DIVERGED, ERRORED)

# every name above that a report or MLflow holds: no other module writes one as a literal. DIVERGED_KEY is
# left out: "diverged" is also the outcome DIVERGED, which results and dashboards compare statuses with.
METRIC_NAMES = (*COST_METRICS, TRAIN_LOSS, COMPLETE_KEY, NODE_KEY, DEVICE_KEY, GPU_KEY, FILLED_KEY, REPLAYED_KEY)


def final_record(result: Mapping[str, Any] | None) -> dict[str, Any]:
    """What a finished trial's last report must keep so a resumed search can replay it without training:
    its metrics and the protocol's markers, as plain JSON values (the Optuna journal stores them)."""
    keep = (COMPLETE_KEY, DIVERGED_KEY, FILLED_KEY, NODE_KEY, DEVICE_KEY, GPU_KEY)
    out: dict[str, Any] = {}
    for key, value in (result or {}).items():
        if not (key.startswith(METRIC_PREFIXES) or key in keep):
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            continue
        out[key] = value if isinstance(value, str) or math.isfinite(value) else None
    return out


class RecordedError(RuntimeError):
    """A trial that errored before its driver was stopped, replayed on resume: the message is the recorded
    one (`Type: first line`), shown as it is, not as this class's name."""


def trial_values(config: Mapping[str, Any] | None) -> dict[str, Any]:
    """The trial's values from Ray's config: a confirmation run wraps its prepared values in `_point`.

    A trial whose actor died before it started has no config in Ray's records (None): no values.
    """
    if not config:
        return {}
    inner = config.get("_point")
    return dict(inner) if isinstance(inner, Mapping) else dict(config)


def public_values(values: Mapping[str, Any]) -> dict[str, Any]:
    """What a user set: method, sampled hyperparameters, workload overrides (not `_seed`, `_phase`, ...)."""
    return {k: v for k, v in values.items() if not str(k).startswith("_")}


def outcome(result: Mapping[str, Any] | None, error: bool = False) -> str:
    """How a trial ended, from its last result: completed, pruned, diverged or errored."""
    if error:
        return ERRORED
    result = result or {}
    if result.get(DIVERGED_KEY) == 1.0:
        return DIVERGED
    if result.get(COMPLETE_KEY) == 1.0:
        return COMPLETED
    return PRUNED


def with_required(report: Mapping[str, Any], required: tuple[str, ...]) -> dict[str, Any]:
    """The report with every required metric present: NaN where it was not computed, named in FILLED_KEY."""
    filled = [k for k in required if k not in report]
    metrics: dict[str, Any] = {k: math.nan for k in filled}
    metrics.update(report)
    if filled:
        metrics[FILLED_KEY] = ",".join(filled)
    return metrics
