"""The MLflow UI's view of a sharptune experiment: its kind and the saved runs view `tuner ui` opens.

Written by the tracker at the start of a run and by `tuner ui` (experiments made before these tags existed).
"""

from __future__ import annotations

import json
from typing import Any

from tuner.layout import ERROR_TAG, PHASE_TAG, STATUS_TAG, now_ms

EXPERIMENT_KIND_TAG = "mlflow.experimentKind"  # MLflow 3: which UI an experiment belongs to
MODEL_TRAINING = "custom_model_development"  # its "Machine learning" kind (the other is genai_development)
RUNS_VIEW = "sharptune-trials"  # the saved view `tuner ui` opens: tag mlflow.sharedViewState.<RUNS_VIEW>
VIEW_TAG_PREFIX = "mlflow.sharedViewState."


def runs_view_state(metric: str | None, goal: str | None) -> dict[str, Any]:
    """The MLflow runs-table state of the saved view: best runs first on `metric`, with the metric,
    method, phase, status and error line as columns (MLflow column names: metrics.`eval/accuracy`)."""
    columns = ([f"metrics.`{metric}`"] if metric else []) + [
        "params.`method`", *(f"tags.`{tag}`" for tag in (PHASE_TAG, STATUS_TAG, ERROR_TAG))]
    state: dict[str, Any] = {"selectedColumns": columns}
    if metric:
        state.update(orderByKey=f"metrics.`{metric}`", orderByAsc=goal == "minimize")
    return state


def set_ui_tags(client: Any, experiment_id: str, metric: str | None, goal: str | None) -> None:
    """Mark the experiment as model training and save the runs view `tuner ui` opens; writes only what
    is missing or different, so experiments made before these tags existed get them too."""
    tags = client.get_experiment(experiment_id).tags
    if tags.get(EXPERIMENT_KIND_TAG) != MODEL_TRAINING:
        client.set_experiment_tag(experiment_id, EXPERIMENT_KIND_TAG, MODEL_TRAINING)
    state = json.dumps(runs_view_state(metric, goal), sort_keys=True)
    key = VIEW_TAG_PREFIX + RUNS_VIEW
    try:
        current = json.loads(tags.get(key, "")).get("state")
    except (ValueError, AttributeError):
        current = None
    if current != state:
        now = now_ms()
        label = f"sharptune trials by {metric}" if metric else "sharptune trials"
        client.set_experiment_tag(experiment_id, key, json.dumps(
            {"name": label, "createdAt": now, "updatedAt": now, "state": state}))
