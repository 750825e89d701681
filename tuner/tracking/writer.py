"""MLflow writing for one experiment (layout in docs/DESIGN.md section 4), restore-safe.

Ray's MLflowLoggerCallback makes no parent run, commits one row per metric and, after a restore,
opens a second run for the same trial. This callback runs in the driver and treats MLflow as the
source of truth: every run is found by its tags before one is created (`sharptune.role=parent`, or
`sharptune.trial_id`), so a resumed driver or a retried trial continues its run; a reopened run only
takes metric steps past the last one it holds (step = `cost/grad_evals`); metrics are buffered and
written with `log_batch`; and every run it opened is terminated when the experiment ends.

A tracking server that goes away never stops the study: the hooks only buffer, `sync` writes and,
while the server is down (`tuner.tracking.outage`), retries on a clock; `tuner.tracking.backfill` completes
MLflow from Ray's records at the end of each phase.

A trial's error line is the runner's (`tuner.run.trial_errors.error_line`, passed in as `error_line`): this
package reads nothing of the runner.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from ray.tune import Callback

from tuner.errors import exception_line
from tuner.names import (
    COMPLETED,
    DEVICE_KEY,
    DIVERGED,
    ERRORED,
    FILLED_KEY,
    GPU_KEY,
    GRAD_EVALS,
    METRIC_PREFIXES,
    NODE_KEY,
    PRUNED,
)
from tuner.tracking.outage import MAX_BUFFERED_ROWS, Outage
from tuner.tracking.parent_page import log_rounded
from tuner.tracking.store_check import artifact_location, ensure_experiment
from tuner.tracking.tags import (
    ADOPTED_TAG,
    DEVICE_TAG,
    ERROR_TAG,
    GPU_TAG,
    METHOD_TAG,
    MLFLOW_BATCH,
    NAME_TAG,
    NODE_TAG,
    ORPHAN_TAG,
    PARENT_TAG,
    PHASE_TAG,
    PRUNED_AT_TAG,
    RETRIES_TAG,
    ROLE_TAG,
    SEED_TAG,
    STATUS_TAG,
    TRIAL_ID_TAG,
    experiment_name,
    now_ms,
    tag_is,
)
from tuner.tracking.ui import set_ui_tags
from tuner.trial.protocol import ADOPT_KEY, outcome, public_values, trial_values
from tuner.value_rules import is_number

STEP_KEY = GRAD_EVALS
INTERRUPTED = "interrupted"  # a trial the driver left unfinished; `resume` continues it
# MLflow's run status: a pruned trial ended as the search meant it to, so FINISHED, not KILLED (the UI draws
# KILLED as a red failure); `sharptune.status` = pruned tells it apart, and the saved view shows that column
RUN_STATUS = {COMPLETED: "FINISHED", PRUNED: "FINISHED", DIVERGED: "FAILED", ERRORED: "FAILED", INTERRUPTED: "KILLED"}
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


def restored_error_line(trial: Any) -> str:
    """A trial's error line for a tracker restored from a tuner.pkl written before the runner passed its own
    in (an experiment interrupted before tuner/tracking existed): the line of Ray's pickled error."""
    with contextlib.suppress(Exception):
        exc = trial.get_pickled_error()
        if isinstance(exc, BaseException):
            return exception_line(exc)
    return "error (Ray recorded no message)"


@dataclass
class _Open:
    """A child run this driver is writing; `run_id` stays None until MLflow answered (see `sync`)."""

    trial: Any
    run_id: str | None = None
    last_step: int = -1
    rows: list[Any] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)
    ending: tuple[str, dict[str, str]] | None = None
    node_tagged: bool = False


class MlflowTracker(Callback):
    """Parent run per experiment, one child run per trial, restore-safe (see module docstring).

    Ray's hooks only change what waits here (`_Open`); `sync` writes it. While the server is down
    (`tuner.tracking.outage`) the hooks go on buffering and `sync` retries on a clock, so the study never
    waits on MLflow."""

    def __init__(self, *, tracking_uri: str, name: str, spec: Mapping[str, Any], experiment_dir: str,
                 error_line: Callable[[Any], str], time_attr: str = STEP_KEY, phase: str = "search",
                 seed: int = 0) -> None:
        self.tracking_uri, self.name, self.spec = tracking_uri, name, dict(spec)
        self.experiment_dir, self.time_attr, self.phase, self.seed = experiment_dir, time_attr, phase, seed
        self.error_line = error_line  # a Ray trial -> its error's one line (module-level: tuner.pkl holds it)
        self._reset()

    def _reset(self) -> None:
        self._client: Any = None
        self._experiment_id: str | None = None
        self._parent_id: str | None = None
        self._open: dict[str, _Open] = {}
        self._last_flush = time.monotonic()
        self._orphans_checked = False
        self.outage = Outage(self.tracking_uri)

    def __getstate__(self) -> dict[str, Any]:  # tuner.pkl holds this callback; the client is rebuilt
        state = self.__dict__.copy()
        for key in ("_client", "_experiment_id", "_parent_id", "_open", "_last_flush", "_orphans_checked", "outage"):
            state.pop(key, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state.setdefault("error_line", restored_error_line)  # pickled before error_line was passed in
        self.__dict__.update(state)
        self._reset()

    # --- MLflow handles ---------------------------------------------------------------------------
    @property
    def client(self) -> Any:
        if self._client is None:
            client = MlflowClient(self.tracking_uri)
            self._experiment_id = ensure_experiment(client, self.name,
                                                    artifact_location(self.tracking_uri, self.experiment_dir))
            self._client = client
        return self._client

    @property
    def experiment_id(self) -> str:
        _ = self.client
        assert self._experiment_id is not None
        return self._experiment_id

    def parent_run_id(self) -> str:
        """Find or create the parent run (one per experiment, reused by `resume`), and mark it RUNNING."""
        if self._parent_id is None:
            found = self.client.search_runs([self.experiment_id], tag_is(ROLE_TAG, "parent"),
                                            order_by=["attributes.start_time ASC"], max_results=1)
            if found:
                self._parent_id = found[0].info.run_id
                if found[0].info.status != "RUNNING":
                    self.client.update_run(self._parent_id, status="RUNNING")
            else:
                run = self.client.create_run(self.experiment_id, run_name=self.name,
                                             tags={ROLE_TAG: "parent", NAME_TAG: self.name})
                self._log_params(run.info.run_id, flatten({k: v for k, v in self.spec.items() if k != "space"}))
                self.client.log_text(run.info.run_id, yaml.safe_dump(self.spec, sort_keys=False), "spec.yaml")
                self._parent_id = run.info.run_id
        return self._parent_id

    def _log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        items = [Param(k, _param_text(v)) for k, v in params.items()]
        for i in range(0, len(items), 100):
            self.client.log_batch(run_id, params=items[i:i + 100])

    def child(self, trial: Any, restart: bool = False) -> _Open:
        """The trial's run as this driver holds it; `restart`: the trial runs again, its old ending is void."""
        run = self._open.setdefault(trial.trial_id, _Open(trial))
        run.trial = trial
        if restart:
            run.ending = None
        return run

    def resolve(self, run: _Open) -> None:
        """Find the trial's run by `sharptune.trial_id` (a resumed driver or retried trial continues it),
        else create it; rows buffered before this that MLflow already holds are dropped."""
        tid, trial = run.trial.trial_id, run.trial
        parent = self.parent_run_id()
        found = self.client.search_runs([self.experiment_id],
                                        f"{tag_is(TRIAL_ID_TAG, tid)} and {tag_is(ROLE_TAG, 'trial')}",
                                        order_by=["attributes.start_time ASC"], max_results=5)
        params = public_values(trial_values(trial.config))
        adopted = trial_values(trial.config).get(ADOPT_KEY)
        if not found and adopted:  # it took over an Optuna trial a killed driver asked: so does its run
            found = self.client.search_runs([self.experiment_id],
                                            f"{tag_is(TRIAL_ID_TAG, adopted)} and {tag_is(ROLE_TAG, 'trial')}",
                                            max_results=1)
            if found:
                self.client.log_batch(found[0].info.run_id, tags=[RunTag(TRIAL_ID_TAG, tid),
                                                                  RunTag(ADOPTED_TAG, adopted)])
        if found:
            run_id = found[0].info.run_id
            history = self.client.get_metric_history(run_id, STEP_KEY)
            last = max((m.step for m in history), default=-1)
            if found[0].info.status != "RUNNING":
                self.client.update_run(run_id, status="RUNNING")
            for stale in (STATUS_TAG, ERROR_TAG):  # it runs again: the old ending no longer holds
                if stale in found[0].data.tags:
                    self.client.delete_tag(run_id, stale)
            if not found[0].data.params:  # created by a driver that lost the server before its params
                self._log_params(run_id, params)
        else:
            point = trial_values(trial.config)
            tags = {
                PARENT_TAG: parent, ROLE_TAG: "trial",
                PHASE_TAG: point.get("_phase", self.phase), METHOD_TAG: str(params.get("method")),
                TRIAL_ID_TAG: tid, SEED_TAG: str(point.get("_seed", self.seed)),
            }
            run_id = self.client.create_run(self.experiment_id, run_name=f"{params.get('method')}-{tid}",
                                            tags=tags).info.run_id
            self._log_params(run_id, params)
            last = -1
        run.rows = [m for m in run.rows if m.step > last]
        run.last_step = max(run.last_step, last)
        run.run_id = run_id

    # --- Ray Tune hooks (all in the driver) -------------------------------------------------------
    def setup(self, **info: Any) -> None:
        metric = self.spec.get("metric") if isinstance(self.spec.get("metric"), Mapping) else {}

        def prepare() -> None:
            self.parent_run_id()
            with contextlib.suppress(Exception):  # the UI's landing view must never stop a run
                set_ui_tags(self.client, self.experiment_id, metric.get("name"), metric.get("goal"))
        self.outage.attempt(prepare)

    def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
        """Once per driver, in the confirmation phase: runs of trials Ray no longer knows (its state file
        predates them when a driver was killed) are orphans; Ray makes their points again as new trials,
        so they are soft-deleted. (In the search, the searcher hands such a trial to a new Ray trial and
        `resolve` moves its run there.)"""
        if self.phase == "search":
            return
        if not self._orphans_checked and self.outage.due():
            self._orphans_checked = self.outage.attempt(lambda: self._delete_orphans({t.trial_id for t in trials}))

    def _delete_orphans(self, known: set[str]) -> None:
        runs = self.client.search_runs([self.experiment_id], f"{tag_is(ROLE_TAG, 'trial')} and "
                                       f"{tag_is(PHASE_TAG, self.phase)}", max_results=10_000)
        for run in runs:
            if run.data.tags.get(TRIAL_ID_TAG) not in known:
                self.client.set_tag(run.info.run_id, ORPHAN_TAG, "true")
                if run.info.status == "RUNNING":
                    self.client.set_terminated(run.info.run_id, status="KILLED")
                self.client.delete_run(run.info.run_id)

    def recorded_errors(self, trial_ids: list[str]) -> dict[str, str]:
        """trial id -> the error line its run holds (what a replay of an errored trial shows again)."""
        out: dict[str, str] = {}
        for tid in trial_ids:
            runs = self.client.search_runs([self.experiment_id], tag_is(TRIAL_ID_TAG, tid), max_results=1)
            if runs and runs[0].data.tags.get(ERROR_TAG):
                out[tid] = runs[0].data.tags[ERROR_TAG]
        return out

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.child(trial, restart=True)
        self.sync()

    def on_trial_restore(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.child(trial, restart=True)
        self.sync()

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        self._buffer(self.child(trial), result)
        if sum(len(r.rows) for r in self._open.values()) >= FLUSH_ROWS or \
                time.monotonic() - self._last_flush >= FLUSH_SECONDS:
            self.sync()

    def _buffer(self, run: _Open, result: Mapping[str, Any]) -> None:
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
            run.tags[NODE_TAG] = result[NODE_KEY]
            for key, tag in ((DEVICE_KEY, DEVICE_TAG), (GPU_KEY, GPU_TAG)):
                if isinstance(result.get(key), str):
                    run.tags[tag] = result[key]
            run.node_tagged = True

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        retries = getattr(trial, "num_failures", None)
        self.child(trial).tags[RETRIES_TAG] = str(retries if retries is not None else "?")
        self.sync(force=True)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.finish(trial, outcome(trial.last_result))

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.finish(trial, ERRORED)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        """Every run opened here is terminated: unfinished trials as interrupted (resume continues them)."""
        for trial in trials:
            if trial.trial_id in self._open and self._open[trial.trial_id].ending is None:
                status = {"TERMINATED": outcome(trial.last_result), "ERROR": ERRORED}.get(trial.status, INTERRUPTED)
                self.finish(trial, status, write=False)
        for run in self._open.values():  # runs of trials Ray no longer lists
            if run.ending is None:
                run.ending = (INTERRUPTED, {})
        if not self.sync(force=True):
            self.outage.say(f"warning: {len(self._open)} trial runs wait for the MLflow server "
                            f"{self.tracking_uri}; the end of the run writes them from Ray's records")

    # --- writing ----------------------------------------------------------------------------------
    def flush(self) -> None:
        """Write what waits now (tests and callers that want it written before going on)."""
        self.sync(force=True)

    def sync(self, force: bool = False) -> bool:
        """Write every waiting run, row, tag and ending (a run is created first when needed); False
        while the server is down (nothing is lost: it all waits for the next attempt)."""
        if not force and not self.outage.due():
            self._bound()
            return False
        written = 0

        def write() -> None:
            nonlocal written
            for tid, run in list(self._open.items()):
                if run.run_id is None:
                    self.resolve(run)
                while run.rows:
                    self.client.log_batch(run.run_id, metrics=run.rows[:MLFLOW_BATCH])
                    written += len(run.rows[:MLFLOW_BATCH])
                    run.rows = run.rows[MLFLOW_BATCH:]
                if run.tags:
                    self.client.log_batch(run.run_id, tags=[RunTag(k, v) for k, v in run.tags.items()])
                    run.tags = {}
                if run.ending is not None:
                    self._terminate(run.run_id, *run.ending)
                    del self._open[tid]
        ok = self.outage.attempt(write)
        self._last_flush = time.monotonic()
        if ok:
            self.outage.succeeded(written)
        else:
            self._bound()
        return ok

    def _bound(self) -> None:
        """Keep at most MAX_BUFFERED_ROWS rows; the oldest go (Ray's records still hold them)."""
        excess = sum(len(r.rows) for r in self._open.values()) - MAX_BUFFERED_ROWS
        while excess > 0:
            run = max(self._open.values(), key=lambda r: len(r.rows))
            n = min(excess, len(run.rows))
            del run.rows[:n]
            self.outage.dropped += n
            excess -= n

    def finish(self, trial: Any, status: str, write: bool = True) -> None:
        """Buffer the trial's last rows, tag how it ended and terminate its run (now, or when the server is back)."""
        run = self.child(trial)
        result = trial.last_result or {}
        if result and isinstance(result.get(STEP_KEY), (int, float)) and int(result[STEP_KEY]) > run.last_step:
            self._buffer(run, result)
        tags = {}
        if status == PRUNED and isinstance(result.get(self.time_attr), (int, float)):
            tags[PRUNED_AT_TAG] = str(result[self.time_attr])
        if status == ERRORED:
            tags[ERROR_TAG] = self.error_line(trial)
        run.ending = (status, tags)
        if write:
            self.sync(force=not self.outage.down)

    def _terminate(self, run_id: str, status: str, tags: Mapping[str, str]) -> None:
        all_tags = [RunTag(STATUS_TAG, status), *(RunTag(k, v) for k, v in tags.items())]
        self.client.log_batch(run_id, tags=all_tags)
        self.client.set_terminated(run_id, status=RUN_STATUS[status])

    def end_parent(self, status: str = "FINISHED", metrics: Mapping[str, float] | None = None) -> None:
        """Terminate the parent run (FINISHED, KILLED when interrupted, FAILED), with summary metrics (rounded)."""
        parent = self.parent_run_id()
        if metrics:
            log_rounded(self.client, parent, metrics)
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
        if run.data.tags.get(ROLE_TAG) == "trial" and STATUS_TAG not in run.data.tags:
            client.log_batch(run.info.run_id, tags=[RunTag(STATUS_TAG, INTERRUPTED)])
        client.set_terminated(run.info.run_id, status="KILLED")
    return len(runs)
