"""The names every layer shares: the metrics a report carries, its markers, the outcomes, the precisions.

The spec checks them, the trial writes them, the runner, tracker and results read them; here, stdlib-only and
importing nothing, each of those imports them without going through another (DESIGN.md section 2). Each is
written once: tests/architecture/test_imports.py finds any literal copy of `METRIC_NAMES` elsewhere. How a
report is made and read (`outcome`, `with_required`, ...) is the report protocol's, `tuner.trial.protocol`.
A workload's own `eval/...` and `diag/...` names are the workload's.
"""

from __future__ import annotations

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
METRIC_PREFIXES = ("eval/", "eval_subset/", "train/", "cost/", "diag/")

# what a trial's closure runs under (spec `precision:`, tuner.trial.precision; methods' own list agrees)
PRECISIONS = ("fp32", "bf16", "fp16")

CURVE_POINTS = 8  # default subset-evaluated curve points per trial (spec: budget.curve_points)
DIAG_POINTS = 4  # default diagnostics points per trial, beside the reports a scheduler reads (budget.diag_points)

# --- the report's markers (their meaning: tuner.trial.protocol)
COMPLETE_KEY = "sharptune/complete"
DIVERGED_KEY = "diverged"
NODE_KEY = "sharptune/node_id"
DEVICE_KEY = "sharptune/device"  # the torch device a trial trains on (cpu without CUDA, even with a GPU share)
GPU_KEY = "sharptune/gpu_ids"  # the GPUs Ray assigned it (its CUDA_VISIBLE_DEVICES), "" for none
FILLED_KEY = "sharptune/filled"
REPLAYED_KEY = "sharptune/replayed"  # 1.0 on the report of a trial replayed from the journal on resume

# --- how a trial ended
COMPLETED, PRUNED, DIVERGED, ERRORED = "completed", "pruned", "diverged", "errored"
OUTCOMES = (COMPLETED, PRUNED, DIVERGED, ERRORED)

# every name above that a report or MLflow holds: no other module writes one as a literal. DIVERGED_KEY is
# left out: "diverged" is also the outcome DIVERGED, which results and dashboards compare statuses with.
METRIC_NAMES = (*COST_METRICS, TRAIN_LOSS, COMPLETE_KEY, NODE_KEY, DEVICE_KEY, GPU_KEY, FILLED_KEY, REPLAYED_KEY)
