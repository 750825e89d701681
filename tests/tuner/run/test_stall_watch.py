"""StallWatch without Ray: its limit, which trials it calls silent, and the progress line that names them."""

from __future__ import annotations

import time
from types import SimpleNamespace

from tuner.run.progress import Progress
from tuner.run.stall import FACTOR, FLOOR_S, StallWatch


def _trial(tid: str, evals: float = 40.0) -> SimpleNamespace:
    return SimpleNamespace(trial_id=tid, status="RUNNING", config={"method": "sgd"},
                           last_result={"cost/grad_evals": evals})


def test_default_limit_follows_the_slowest_interval_and_never_drops_below_the_floor(tmp_path) -> None:
    watch = StallWatch(str(tmp_path))
    assert watch.limit() == FLOOR_S  # nothing seen yet: never unbounded
    trial = _trial("a")
    watch.on_trial_start(0, [], trial)
    watch._last["a"] = (time.monotonic() - 100.0, 0.0)  # its first report comes 100 s after its start
    watch.on_trial_result(0, [], trial, {"cost/grad_evals": 10.0})
    assert abs(watch.limit() - FACTOR * 100.0) < 1.0 and FACTOR * 100.0 > FLOOR_S
    assert StallWatch(str(tmp_path), 30.0).limit() == 30.0  # the spec's value wins


def test_progress_names_a_silent_trial_and_the_watch_stops_only_past_the_limit(tmp_path) -> None:
    watch = StallWatch(str(tmp_path), 10.0)
    quiet, busy = _trial("quiet"), _trial("busy")
    for t in (quiet, busy):
        watch.on_trial_start(0, [], t)
    watch._last["quiet"] = (time.monotonic() - 7.0, 40.0)  # silent for 7 of 10 s
    lines: list[str] = []
    progress = Progress(metric="eval/loss", goal="minimize", total=4, budget=200, write=lines.append)
    progress.watch = watch
    progress.block([quiet, busy])
    silent = [line for line in lines if "silent for" in line]
    assert len(silent) == 1 and "quiet" in silent[0] and "stopped as stalled after 10s" in silent[0], lines
    stopped: list[str] = []
    watch._stop = lambda trial, s, g: stopped.append(trial.trial_id)  # the kill itself needs Ray
    watch.on_step_begin(0, [quiet, busy])
    assert stopped == []  # 7 s < 10 s
    watch._last["quiet"] = (time.monotonic() - 11.0, 40.0)
    watch._checked = 0.0
    watch.on_step_begin(0, [quiet, busy])
    assert stopped == ["quiet"]
