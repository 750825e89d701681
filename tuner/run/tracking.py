"""MLflow writing for one experiment (layout in docs/DESIGN.md section 4), restore-safe.

Ray's MLflowLoggerCallback makes no parent run, commits one row per metric and, after a restore,
opens a second run for the same trial. This callback runs in the driver and treats MLflow as the
source of truth: every run is found by its tags before one is created (`sharptune.role=parent`, or
`sharptune.trial_id`), so a resumed driver or a retried trial continues its run; a reopened run only
takes metric steps past the last one it holds (step = `cost/grad_evals`); metrics are buffered and
written with `log_batch`; and every run it opened is terminated when the experiment ends.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from ray.tune import Callback

from tuner.errors import RuntimeFailure
from tuner.layout import ERROR_TAG, MLFLOW_BATCH, experiment_name, now_ms
from tuner.trial.protocol import (
    COMPLETED,
    DIVERGED,
    ERRORED,
    FILLED_KEY,
    METRIC_PREFIXES,
    NODE_KEY,
    PRUNED,
    outcome,
    public_values,
    trial_values,
)
from tuner.values import is_number

STEP_KEY = "cost/grad_evals"
INTERRUPTED = "interrupted"  # a trial the driver left unfinished; `resume` continues it
RUN_STATUS = {COMPLETED: "FINISHED", PRUNED: "KILLED", DIVERGED: "FAILED", ERRORED: "FAILED", INTERRUPTED: "KILLED"}
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"  # MLflow 3: which UI an experiment belongs to
MODEL_TRAINING = "custom_model_development"  # its "Machine learning" kind (the other is genai_development)
RUNS_VIEW = "sharptune-trials"  # the saved view `tuner ui` opens: tag mlflow.sharedViewState.<RUNS_VIEW>
VIEW_TAG_PREFIX = "mlflow.sharedViewState."
FLUSH_SECONDS = 2.0
FLUSH_ROWS = 200


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested spec dict -> dotted keys (`metric.name`), the parent run's params."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def _param_text(value: Any) -> str:
    text = str(list(value) if isinstance(value, tuple) else value)
    return text if len(text) <= 6000 else text[:5997] + "..."


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


@contextlib.contextmanager
def _fast_http(tracking_uri: str) -> Iterator[None]:
    """No retries and a short timeout while probing a server: fail in seconds, not minutes."""
    if not tracking_uri.startswith(("http:", "https:")):
        yield
        return
    saved = {k: os.environ.get(k) for k in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT")}
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
    os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = "10"
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def artifact_location(tracking_uri: str, experiment_dir: str | Path) -> str | None:
    """Artifacts of a local store go next to it (MLflow's default is ./mlruns of the current folder)."""
    if tracking_uri.startswith(("sqlite:", "file:")):
        return (Path(experiment_dir) / "artifacts").resolve().as_uri()
    return None


def ensure_experiment(client: Any, name: str, artifacts: str | None) -> str:
    """Id of `sharptune/<name>`, created (a model-training experiment) and restored if deleted, as needed."""
    exp = client.get_experiment_by_name(experiment_name(name))
    if exp is None:
        return client.create_experiment(experiment_name(name), artifact_location=artifacts,
                                        tags={EXPERIMENT_KIND_TAG: MODEL_TRAINING})
    if exp.lifecycle_stage == "deleted":
        client.restore_experiment(exp.experiment_id)
    return exp.experiment_id


def runs_view_state(metric: str | None, goal: str | None) -> dict[str, Any]:
    """The MLflow runs-table state of the saved view: best runs first on `metric`, with the metric,
    method, phase, status and error line as columns (MLflow column names: metrics.`eval/accuracy`)."""
    columns = ([f"metrics.`{metric}`"] if metric else []) + [
        "params.`method`", "tags.`sharptune.phase`", "tags.`sharptune.status`", f"tags.`{ERROR_TAG}`"]
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


def error_line(trial: Any) -> str:
    """`Type: message` (the message's first line) of a Ray trial's last error.

    From the exception Ray pickled (a RayTaskError is unwrapped to the trainable's own exception),
    else the last line of Ray's error.txt, else a fixed text."""
    exc = None
    with contextlib.suppress(Exception):  # storage gone or an unpicklable error: fall back to the text
        exc = trial.get_pickled_error()
    if isinstance(exc, BaseException):
        return exception_line(exc)
    text = None
    with contextlib.suppress(Exception):
        text = trial.get_error()
    lines = [line.strip() for line in str(text or "").splitlines() if line.strip()]
    return _clip(lines[-1]) if lines else "error (Ray recorded no message)"


def exception_line(exc: BaseException) -> str:
    """`Type: first message line` of a trial's exception (a RayTaskError is unwrapped to the trainable's)."""
    cause = getattr(exc, "cause", None)
    cause = cause if isinstance(cause, BaseException) else exc
    lines = [line.strip() for line in str(cause).splitlines() if line.strip()]
    return _clip(f"{type(cause).__name__}: {lines[0]}" if lines else type(cause).__name__)


def _clip(text: str, limit: int = 500) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."


def check_tracking(tracking_uri: str, name: str, experiment_dir: str | Path) -> str:
    """Reach and write the store before anything starts; RuntimeFailure with the reason otherwise."""
    if tracking_uri.startswith("sqlite:///"):
        folder = Path(tracking_uri[len("sqlite:///"):]).parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RuntimeFailure(f"MLflow store {tracking_uri}: cannot create {folder}: {exc.strerror}") from None
        if not os.access(folder, os.W_OK):
            raise RuntimeFailure(f"MLflow store {tracking_uri}: folder {folder} is not writable")
    try:
        with _fast_http(tracking_uri):
            client = MlflowClient(tracking_uri)
            exp_id = ensure_experiment(client, name, artifact_location(tracking_uri, experiment_dir))
            client.set_experiment_tag(exp_id, "sharptune.checked_at", str(int(time.time())))
    except Exception as exc:  # noqa: BLE001 - any failure here means the store is unusable
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise RuntimeFailure(f"MLflow tracking store {tracking_uri} cannot be reached or written: {first} "
                             "(start the server, fix the path, or set tracking.uri in the spec)") from None
    return exp_id


@dataclass
class _Open:
    """A child run this driver is writing."""

    run_id: str
    last_step: int = -1
    rows: list[Any] = field(default_factory=list)
    node_tagged: bool = False


class MlflowTracker(Callback):
    """Parent run per experiment, one child run per trial, restore-safe (see module docstring)."""

    def __init__(self, *, tracking_uri: str, name: str, spec: Mapping[str, Any], experiment_dir: str,
                 time_attr: str = STEP_KEY, phase: str = "search", seed: int = 0) -> None:
        self.tracking_uri, self.name, self.spec = tracking_uri, name, dict(spec)
        self.experiment_dir, self.time_attr, self.phase, self.seed = experiment_dir, time_attr, phase, seed
        self._reset()

    def _reset(self) -> None:
        self._client: Any = None
        self._experiment_id: str | None = None
        self._parent_id: str | None = None
        self._open: dict[str, _Open] = {}
        self._last_flush = time.monotonic()
        self._orphans_checked = False

    def __getstate__(self) -> dict[str, Any]:  # tuner.pkl holds this callback; the client is rebuilt
        state = self.__dict__.copy()
        for key in ("_client", "_experiment_id", "_parent_id", "_open", "_last_flush", "_orphans_checked"):
            state.pop(key, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._reset()

    # --- MLflow handles ---------------------------------------------------------------------------
    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = MlflowClient(self.tracking_uri)
            self._experiment_id = ensure_experiment(self._client, self.name,
                                                    artifact_location(self.tracking_uri, self.experiment_dir))
        return self._client

    @property
    def experiment_id(self) -> str:
        _ = self.client
        assert self._experiment_id is not None
        return self._experiment_id

    def parent_run_id(self) -> str:
        """Find or create the parent run (one per experiment, reused by `resume`), and mark it RUNNING."""
        if self._parent_id is None:
            found = self.client.search_runs([self.experiment_id], "tags.`sharptune.role` = 'parent'",
                                            order_by=["attributes.start_time ASC"], max_results=1)
            if found:
                self._parent_id = found[0].info.run_id
                if found[0].info.status != "RUNNING":
                    self.client.update_run(self._parent_id, status="RUNNING")
            else:
                run = self.client.create_run(self.experiment_id, run_name=self.name,
                                             tags={"sharptune.role": "parent", "sharptune.name": self.name})
                self._parent_id = run.info.run_id
                self._log_params(self._parent_id, flatten({k: v for k, v in self.spec.items() if k != "space"}))
                self.client.log_text(self._parent_id, yaml.safe_dump(self.spec, sort_keys=False), "spec.yaml")
        return self._parent_id

    def _log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        items = [Param(k, _param_text(v)) for k, v in params.items()]
        for i in range(0, len(items), 100):
            self.client.log_batch(run_id, params=items[i:i + 100])

    def child(self, trial: Any) -> _Open:
        """The trial's run: cached, else found by `sharptune.trial_id`, else created."""
        tid = trial.trial_id
        if tid in self._open:
            return self._open[tid]
        parent = self.parent_run_id()
        found = self.client.search_runs([self.experiment_id],
                                        f"tags.`sharptune.trial_id` = '{_quote(tid)}' and "
                                        "tags.`sharptune.role` = 'trial'",
                                        order_by=["attributes.start_time ASC"], max_results=5)
        if found:
            run_id = found[0].info.run_id
            history = self.client.get_metric_history(run_id, STEP_KEY)
            last = max((m.step for m in history), default=-1)
            if found[0].info.status != "RUNNING":
                self.client.update_run(run_id, status="RUNNING")
            for stale in ("sharptune.status", ERROR_TAG):  # it runs again: the old ending no longer holds
                if stale in found[0].data.tags:
                    self.client.delete_tag(run_id, stale)
            opened = _Open(run_id, last_step=last)
        else:
            point = trial_values(trial.config)
            params = public_values(point)
            tags = {
                "mlflow.parentRunId": parent, "sharptune.role": "trial", "sharptune.phase": point.get("_phase",
                                                                                                     self.phase),
                "sharptune.method": str(params.get("method")), "sharptune.trial_id": tid,
                "sharptune.seed": str(point.get("_seed", self.seed)),
            }
            run = self.client.create_run(self.experiment_id, run_name=f"{params.get('method')}-{tid}", tags=tags)
            self._log_params(run.info.run_id, params)
            opened = _Open(run.info.run_id)
        self._open[tid] = opened
        return opened

    # --- Ray Tune hooks (all in the driver) -------------------------------------------------------
    def setup(self, **info: Any) -> None:
        self.parent_run_id()
        metric = self.spec.get("metric") if isinstance(self.spec.get("metric"), Mapping) else {}
        with contextlib.suppress(Exception):  # the UI's landing view must never stop a run
            set_ui_tags(self.client, self.experiment_id, metric.get("name"), metric.get("goal"))

    def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
        """Once per driver: runs of trials Ray no longer knows (its state file predates them when a
        driver was killed) are orphans; Ray samples their replacements, so they are soft-deleted."""
        if self._orphans_checked:
            return
        self._orphans_checked = True
        known = {t.trial_id for t in trials}
        runs = self.client.search_runs([self.experiment_id], "tags.`sharptune.role` = 'trial' and "
                                       f"tags.`sharptune.phase` = '{self.phase}'", max_results=10_000)
        for run in runs:
            if run.data.tags.get("sharptune.trial_id") not in known:
                self.client.set_tag(run.info.run_id, "sharptune.orphan", "true")
                if run.info.status == "RUNNING":
                    self.client.set_terminated(run.info.run_id, status="KILLED")
                self.client.delete_run(run.info.run_id)

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.child(trial)

    def on_trial_restore(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.child(trial)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        run = self.child(trial)
        step = result.get(STEP_KEY, result.get("training_iteration", 0))
        if not is_number(step) or int(step) <= run.last_step:
            return  # a retried trial re-reports steps its run already holds
        run.last_step = int(step)
        stamp = int(result["timestamp"] * 1000) if isinstance(result.get("timestamp"), (int, float)) else now_ms()
        filled = set(str(result.get(FILLED_KEY) or "").split(","))  # NaN only for Ray's metric check
        for key, value in result.items():
            if key.startswith(METRIC_PREFIXES) and isinstance(value, (int, float)) and not isinstance(value, bool) \
                    and key not in filled:
                run.rows.append(Metric(key, float(value), stamp, int(step)))
        if not run.node_tagged and isinstance(result.get(NODE_KEY), str):
            self.client.set_tag(run.run_id, "sharptune.node_id", result[NODE_KEY])
            run.node_tagged = True
        if sum(len(r.rows) for r in self._open.values()) >= FLUSH_ROWS or \
                time.monotonic() - self._last_flush >= FLUSH_SECONDS:
            self.flush()

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        run = self.child(trial)
        self.flush()
        retries = getattr(trial, "num_failures", None)
        self.client.set_tag(run.run_id, "sharptune.retries", str(retries if retries is not None else "?"))

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.finish(trial, outcome(trial.last_result))

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.finish(trial, ERRORED)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        """Every run opened here is terminated: unfinished trials as interrupted (resume continues them)."""
        self.flush()
        for trial in trials:
            if trial.trial_id in self._open:
                status = trial.status
                if status == "TERMINATED":
                    self.finish(trial, outcome(trial.last_result))
                elif status == "ERROR":
                    self.finish(trial, ERRORED)
                else:
                    self.finish(trial, INTERRUPTED)
        for tid in list(self._open):  # runs of trials Ray no longer lists
            run = self._open.pop(tid)
            self._terminate(run.run_id, INTERRUPTED, {})

    # --- writing ----------------------------------------------------------------------------------
    def flush(self) -> None:
        """Write every buffered metric row, one `log_batch` per run (chunked at MLflow's limit)."""
        for run in self._open.values():
            while run.rows:
                chunk, run.rows = run.rows[:MLFLOW_BATCH], run.rows[MLFLOW_BATCH:]
                self.client.log_batch(run.run_id, metrics=chunk)
        self._last_flush = time.monotonic()

    def finish(self, trial: Any, status: str) -> None:
        """Flush the trial's rows, tag how it ended, terminate its run."""
        run = self.child(trial)
        result = trial.last_result or {}
        if result and isinstance(result.get(STEP_KEY), (int, float)) and int(result[STEP_KEY]) > run.last_step:
            self.on_trial_result(0, [], trial, result)
        self.flush()
        tags = {}
        if status == PRUNED and isinstance(result.get(self.time_attr), (int, float)):
            tags["sharptune.pruned_at"] = str(result[self.time_attr])
        if status == ERRORED:
            tags[ERROR_TAG] = error_line(trial)
        self._open.pop(trial.trial_id, None)
        self._terminate(run.run_id, status, tags)

    def _terminate(self, run_id: str, status: str, tags: Mapping[str, str]) -> None:
        all_tags = [RunTag("sharptune.status", status), *(RunTag(k, v) for k, v in tags.items())]
        self.client.log_batch(run_id, tags=all_tags)
        self.client.set_terminated(run_id, status=RUN_STATUS[status])

    def end_parent(self, status: str = "FINISHED", metrics: Mapping[str, float] | None = None) -> None:
        """Terminate the parent run (FINISHED, KILLED when interrupted, FAILED), with summary metrics."""
        parent = self.parent_run_id()
        if metrics:
            stamp = now_ms()
            rows = [Metric(k, float(v), stamp, 0) for k, v in metrics.items() if isinstance(v, (int, float))]
            for i in range(0, len(rows), MLFLOW_BATCH):
                self.client.log_batch(parent, metrics=rows[i:i + MLFLOW_BATCH])
        self.client.set_terminated(parent, status=status)
        self._parent_id = None


def close_dangling(tracking_uri: str, name: str, keep: str | None = None) -> int:
    """Terminate every run still RUNNING but `keep` (a driver killed mid-write left them); returns the count."""
    client = MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name(experiment_name(name))
    if exp is None:
        return 0
    runs = [r for r in client.search_runs([exp.experiment_id], "attributes.status = 'RUNNING'", max_results=10_000)
            if r.info.run_id != keep]
    for run in runs:
        if run.data.tags.get("sharptune.role") == "trial" and "sharptune.status" not in run.data.tags:
            client.log_batch(run.info.run_id, tags=[RunTag("sharptune.status", INTERRUPTED)])
        client.set_terminated(run.info.run_id, status="KILLED")
    return len(runs)
