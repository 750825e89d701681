"""MLflow backfilled from Ray's records after a fit: every trial of the phase, every reported step, how it ended.

Ray keeps each trial's reports in the experiment folder (`Result.metrics_dataframe`), so whatever the
driver could not write (the server was down, the buffer was full, a driver was killed before a flush)
is written here from those records; runs that already hold everything cost one search. A server still
down after `wait_s` ends the run with `TrackingDown` (exit 1): the trials stay in the folder and
`tuner resume` writes them once the server is back.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from types import SimpleNamespace
from typing import Any

from mlflow.entities import Metric

from tuner.errors import RuntimeFailure
from tuner.names import ERRORED, FILLED_KEY, METRIC_PREFIXES, PRUNED
from tuner.tracking.outage import RETRY_SECONDS, is_transient, quick_requests
from tuner.tracking.tags import ERROR_TAG, PHASE_TAG, PRUNED_AT_TAG, ROLE_TAG, STATUS_TAG, TRIAL_ID_TAG, tag_is
from tuner.tracking.writer import STEP_KEY, MlflowTracker
from tuner.trial.protocol import outcome


class TrackingDown(RuntimeFailure):
    """The tracking server stayed down past the end-of-run wait."""


def _rows(frame: Any, have: set[int]) -> list[Metric]:
    """Metric rows of Ray's records at the steps MLflow lacks (NaN cells: not reported at that step)."""
    if frame is None or STEP_KEY not in getattr(frame, "columns", ()):
        return []
    rows = []
    for record in frame.to_dict("records"):
        step = record.get(STEP_KEY)
        if not isinstance(step, (int, float)) or math.isnan(step) or int(step) in have:
            continue
        stamp = int(record["timestamp"] * 1000) if isinstance(record.get("timestamp"), (int, float)) else 0
        filled = set(str(record.get(FILLED_KEY) or "").split(","))
        rows += [Metric(k, float(v), stamp, int(step)) for k, v in record.items()
                 if k.startswith(METRIC_PREFIXES) and k not in filled and isinstance(v, (int, float))
                 and not isinstance(v, bool) and not math.isnan(v)]
    return rows


def _settle_once(tracker: MlflowTracker, results: Iterable[Any], exception_line: Callable[[BaseException], str]) -> int:
    """One pass; returns how many runs it had to complete."""
    client = tracker.client
    runs = {r.data.tags.get(TRIAL_ID_TAG): r for r in client.search_runs(
        [tracker.experiment_id], f"{tag_is(ROLE_TAG, 'trial')} and {tag_is(PHASE_TAG, tracker.phase)}",
        max_results=10_000)}
    fixed = 0
    for result in results:
        metrics = result.metrics or {}
        tid, frame = metrics.get("trial_id"), result.metrics_dataframe
        if not tid:
            continue
        last = frame[STEP_KEY].max() if frame is not None and STEP_KEY in frame else metrics.get(STEP_KEY)
        run = runs.get(tid)
        if run is not None and run.info.status != "RUNNING" and STATUS_TAG in run.data.tags \
                and (not isinstance(last, (int, float)) or run.data.metrics.get(STEP_KEY, -1) >= last):
            continue
        fixed += 1
        trial = SimpleNamespace(trial_id=tid, config=result.config, last_result=metrics)
        held = tracker.child(trial, restart=True)
        tracker.resolve(held)  # found (reopened) or created
        have = {int(m.step) for m in client.get_metric_history(held.run_id, STEP_KEY)}
        held.rows = _rows(frame, have)
        status = ERRORED if result.error is not None else outcome(metrics)
        tags = {ERROR_TAG: exception_line(result.error)} if result.error is not None else {}
        if status == PRUNED and isinstance(metrics.get(tracker.time_attr), (int, float)):
            tags[PRUNED_AT_TAG] = str(metrics[tracker.time_attr])
        held.ending = (status, tags)
        tracker.outage.since = None  # this pass is its own retry loop
        if not tracker.sync(force=True):
            raise ConnectionError("the MLflow server stopped answering")
    return fixed


def settle(tracker: MlflowTracker, results: Iterable[Any], wait_s: float, say: Any,
           exception_line: Callable[[BaseException], str]) -> int:
    """Complete MLflow from Ray's records, waiting up to `wait_s` for a server that is down; an errored
    trial's error tag is `exception_line` of its error (the runner's `tuner.run.trial_errors`)."""
    results = list(results)
    tracker.outage.say = lambda text: None  # this loop says what happens
    deadline = time.monotonic() + wait_s
    announced = False
    while True:
        try:
            with quick_requests(tracker.tracking_uri):
                fixed = _settle_once(tracker, results, exception_line)
            if fixed:
                say(f"MLflow: completed {fixed} trial runs from Ray's records")
            return fixed
        except Exception as exc:
            if not is_transient(exc):
                raise
            if time.monotonic() >= deadline:
                raise TrackingDown(f"MLflow server {tracker.tracking_uri} still unreachable after waiting "
                                   f"{wait_s:.0f} s at the end of the {tracker.phase} phase; the trials are kept "
                                   "in the experiment folder and `python -m tuner resume` writes them once the "
                                   "server is back") from None
            if not announced:
                say(f"MLflow server {tracker.tracking_uri} unreachable at the end of the {tracker.phase} phase; "
                    f"waiting up to {wait_s:.0f} s (SHARPTUNE_MLFLOW_WAIT_S)")
                announced = True
            time.sleep(RETRY_SECONDS)
