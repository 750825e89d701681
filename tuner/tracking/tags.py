"""The MLflow names of sharptune, written once (DESIGN.md section 4): the experiment name, the tag names, filters.

The writer, the backfill, the reader, the winner tags and the UI view use these; no other module spells
a tag name as a literal (tests/architecture/test_imports.py). `tag_column` is a tag's column in
`search_runs`'s frame and `tag_is` an MLflow filter on it. Stdlib only: importing it costs no MLflow.
"""

from __future__ import annotations

import time

MLFLOW_PREFIX = "sharptune/"  # MLflow experiment of sharptune experiment NAME: sharptune/NAME
MLFLOW_BATCH = 900  # MLflow takes at most 1000 metrics per log_batch


# --- MLflow tag names -------------------------------------------------------------------------------
PARENT_TAG = "mlflow.parentRunId"  # MLflow's own: a trial's run under the experiment's parent run
ROLE_TAG = "sharptune.role"  # parent | trial
NAME_TAG = "sharptune.name"  # the parent's: the sharptune experiment name
PHASE_TAG = "sharptune.phase"  # search | confirm
METHOD_TAG = "sharptune.method"
TRIAL_ID_TAG = "sharptune.trial_id"  # Ray's trial id: how a resumed driver or a retried trial finds its run
SEED_TAG = "sharptune.seed"
STATUS_TAG = "sharptune.status"  # completed | pruned | diverged | errored (tuner.trial.protocol.OUTCOMES)
PRUNED_AT_TAG = "sharptune.pruned_at"  # the scheduler's clock where it stopped the trial
ERROR_TAG = "sharptune.error"  # an errored trial's run: `Type: first line of the message` of its last error
RETRIES_TAG = "sharptune.retries"
ORPHAN_TAG = "sharptune.orphan"  # a run no Ray trial owns (its trial was never saved): soft-deleted
ADOPTED_TAG = "sharptune.adopted_from"  # the Ray trial id a run had before a resumed search's trial took it over
NODE_TAG = "sharptune.node_id"  # where it ran: Ray's node, its GPUs (CUDA_VISIBLE_DEVICES), the torch device
GPU_TAG = "sharptune.gpu_ids"
DEVICE_TAG = "sharptune.device"
BEST_TAG = "sharptune.best"  # a winner's run (tuner.tracking.winner_tags)
RANK_TAG = "sharptune.rank"
WINNER_TAG = "sharptune.winner"  # the parent's: the best method and which runs decided it
WINNER_SOURCE_TAG = "sharptune.winner_source"
CHECKED_AT_TAG = "sharptune.checked_at"  # the experiment's: when the store check last wrote it
NOTE_TAG = "mlflow.note.content"  # MLflow's own: a run's description; the parent's holds the comparison table
TAGS = (PARENT_TAG, ROLE_TAG, NAME_TAG, PHASE_TAG, METHOD_TAG, TRIAL_ID_TAG, SEED_TAG, STATUS_TAG, PRUNED_AT_TAG,
        ERROR_TAG, RETRIES_TAG, ORPHAN_TAG, ADOPTED_TAG, NODE_TAG, GPU_TAG, DEVICE_TAG, BEST_TAG, RANK_TAG, WINNER_TAG,
        WINNER_SOURCE_TAG, CHECKED_AT_TAG, NOTE_TAG)


def tag_column(tag: str) -> str:
    """The column of `tag` in the frame `mlflow.search_runs` returns."""
    return f"tags.{tag}"


def tag_is(tag: str, value: str) -> str:
    """An MLflow search filter: runs whose `tag` is `value` (quotes escaped)."""
    quoted = value.replace("\\", "\\\\").replace("'", "\\'")
    return f"tags.`{tag}` = '{quoted}'"


def experiment_name(name: str) -> str:
    """The MLflow experiment of a sharptune experiment."""
    return MLFLOW_PREFIX + name


def now_ms() -> int:
    """MLflow's clock (milliseconds since the epoch) for rows that carry no timestamp of their own."""
    return int(time.time() * 1000)
