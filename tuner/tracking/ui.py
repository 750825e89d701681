"""The MLflow UI's view of a sharptune experiment: its kind, the saved runs view, and the URLs `tuner ui` opens.

Written by the tracker at the start of a run and by `tuner ui` (experiments made before these tags existed).
The saved view groups the runs by phase (search, confirm; the parent run falls under "Additional runs"),
best first on the spec's metric, with each run's outcome (`sharptune.status`: completed, pruned, ...) as a
column: a pruned trial ends FINISHED (green), and this column says it was pruned.

MLflow 3.17 chooses between its GenAI and its model-training ("classic") UI from the `workflowType` URL
parameter, else from the browser's localStorage (`mlflow.workflowType_v1`, GenAI when unset); the
`mlflow.experimentKind` tag no longer decides it. Its own links (a run's page from the runs table) drop
the parameter, so `tuner ui` opens through a page of ours (`tuner.tracking.app`) that stores the
classic mode in localStorage first.
"""

from __future__ import annotations

import json
from typing import Any

from tuner.tracking.tags import ERROR_TAG, PHASE_TAG, PRUNED_AT_TAG, STATUS_TAG, now_ms

EXPERIMENT_KIND_TAG = "mlflow.experimentKind"  # MLflow 3: which UI an experiment belongs to
MODEL_TRAINING = "custom_model_development"  # its "Machine learning" kind (the other is genai_development)
RUNS_VIEW = "sharptune-trials"  # the saved view `tuner ui` opens: tag mlflow.sharedViewState.<RUNS_VIEW>
VIEW_TAG_PREFIX = "mlflow.sharedViewState."
CLASSIC = "machine_learning"  # MLflow's workflowType of the model-training UI
WORKFLOW_STORAGE_KEY = "mlflow.workflowType_v1"  # localStorage key of MLflow's useLocalStorage(workflowType, v1)
LANDING_PATH = "sharptune/open"  # tuner.tracking.app's page: classic mode stored, then the parent run
# MLflow opens its assistant panel on a browser's first visit, over a third of the page: marked as done
ASSISTANT_SHOWN_KEY = "mlflow.assistant.fab.autoOpenedOnFirstLoad_v1"


def runs_view_state(metric: str | None, goal: str | None) -> dict[str, Any]:
    """The MLflow runs-table state of the saved view: grouped by phase, best runs first on `metric`, with
    the metric, method, phase, outcome, pruning point and error line as columns (MLflow column names:
    metrics.`eval/accuracy`)."""
    columns = ([f"metrics.`{metric}`"] if metric else []) + [
        "params.`method`", *(f"tags.`{tag}`" for tag in (PHASE_TAG, STATUS_TAG, PRUNED_AT_TAG, ERROR_TAG))]
    best = "max" if goal == "maximize" else "min"
    state: dict[str, Any] = {"selectedColumns": columns, "groupBy": {
        "aggregateFunction": best, "groupByKeys": [{"mode": "tag", "groupByData": PHASE_TAG}]}}
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
        label = f"sharptune trials by {metric}, per phase" if metric else "sharptune trials per phase"
        client.set_experiment_tag(experiment_id, key, json.dumps(
            {"name": label, "createdAt": now, "updatedAt": now, "state": state}))


def runs_route(experiment_id: str) -> str:
    """The app's route (after `#`) of the experiment's runs table in classic mode, through the saved view."""
    return f"/experiments/{experiment_id}/runs?workflowType={CLASSIC}&viewStateShareKey={RUNS_VIEW}"


def run_route(experiment_id: str, run_id: str, artifact: str | None = None) -> str:
    """The app's route (after `#`) of one run's page in classic mode, or of one of its artifacts."""
    tail = f"/artifacts/{artifact}" if artifact else ""
    return f"/experiments/{experiment_id}/runs/{run_id}{tail}?workflowType={CLASSIC}"
