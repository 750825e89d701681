"""A trial that stops reporting is stopped, as errored, and the study goes on (issue 29).

A hung data loader, a deadlocked collective or a `sleep` in a user's `next_batch` never raises: Ray
would wait on it forever while the console kept printing its last numbers. `StallWatch` (a Ray callback
in the driver) times the silence since each running trial's last report. Past the limit it records why
(`stalled for N s at G grad evals`: on Ray's trial object, which the tracker's error tag and the
progress line read, and in `<experiment>/stalled.json`, which the summary reads) and kills the trial's
actor with no retry: a hang is not a crash that a retry mends.

The limit is `budget.stall_timeout` when the spec sets one. Otherwise it is `FACTOR` times the slowest
interval between two reports seen so far, over every trial, and never below `FLOOR_S`: a trial gets time
to build its model and reach its first report, and the limit is never unbounded.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import ray
from ray.tune import Callback

from tuner.names import GRAD_EVALS

FLOOR_S = 600.0  # the default limit before a report interval is known, and its least value after
FACTOR = 10.0  # the default limit: this many times the slowest report interval seen
QUIET_SHARE = 0.5  # the progress line names a trial once it has been silent for this share of its limit
STALLED_FILE = "stalled.json"
STALL_ATTR = "sharptune_stalled"  # set on Ray's live Trial object: the driver's callbacks read the reason there
CHECK_EVERY_S = 1.0


def stall_reasons(experiment_dir: str | Path) -> dict[str, str]:
    """Ray trial id -> `stalled for N s at G grad evals`, for every trial a watch stopped."""
    path = Path(experiment_dir) / STALLED_FILE
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return {}


class StallWatch(Callback):
    """Stops a running trial that has reported nothing for longer than the limit (module docstring)."""

    def __init__(self, experiment_dir: str, timeout_s: float | None = None) -> None:
        self.experiment_dir, self.timeout_s = str(experiment_dir), timeout_s
        self._reset()

    def _reset(self) -> None:
        self._last: dict[str, tuple[float, float]] = {}  # trial id -> (monotonic time of its last report, grad evals)
        self._slowest = 0.0
        self._checked = 0.0

    def __getstate__(self) -> dict[str, Any]:  # Ray pickles its callbacks: clocks do not survive a restart
        return {"experiment_dir": self.experiment_dir, "timeout_s": self.timeout_s}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._reset()

    def limit(self) -> float:
        """Seconds of silence after which a trial is stopped."""
        if self.timeout_s is not None:
            return self.timeout_s
        return max(FLOOR_S, FACTOR * self._slowest)

    def quiet(self) -> dict[str, float]:
        """Running trials silent for a good share of the limit: trial id -> seconds (for the progress line)."""
        now, limit = time.monotonic(), self.limit()
        return {tid: now - at for tid, (at, _) in self._last.items() if now - at >= QUIET_SHARE * limit}

    # --- Ray's hooks --------------------------------------------------------------------------------
    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._last[trial.trial_id] = (time.monotonic(), self._last.get(trial.trial_id, (0.0, 0.0))[1])

    on_trial_restore = on_trial_start
    on_trial_recover = on_trial_start

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        now = time.monotonic()
        at, evals = self._last.get(trial.trial_id, (now, 0.0))
        if trial.trial_id in self._last:
            self._slowest = max(self._slowest, now - at)
        grad_evals = result.get(GRAD_EVALS)
        self._last[trial.trial_id] = (now, float(grad_evals) if isinstance(grad_evals, (int, float)) else evals)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._last.pop(trial.trial_id, None)

    on_trial_error = on_trial_complete

    def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
        now = time.monotonic()
        if now - self._checked < CHECK_EVERY_S:
            return
        self._checked = now
        limit = self.limit()
        for trial in trials:
            entry = self._last.get(trial.trial_id)
            if entry is None or trial.status != "RUNNING" or now - entry[0] <= limit:
                continue
            self._stop(trial, now - entry[0], entry[1])

    def _stop(self, trial: Any, silent_s: float, grad_evals: float) -> None:
        """Record why, then kill the trial's actor; Ray records the death as the trial's error, not retried."""
        reasons = stall_reasons(self.experiment_dir)
        reasons[trial.trial_id] = f"stalled for {silent_s:.0f} s at {grad_evals:g} grad evals"
        path = Path(self.experiment_dir) / STALLED_FILE
        path.write_text(json.dumps(reasons, indent=1))
        setattr(trial, STALL_ATTR, reasons[trial.trial_id])
        self._last.pop(trial.trial_id, None)
        trial.max_failures = 0  # Trial.should_recover reads it: a hang is not retried
        actor = trial.temporary_state.ray_actor  # Ray's private surface (tests/tuner/run/test_ray_private_surface.py)
        if actor is not None:
            ray.kill(actor, no_restart=True)
