"""An experiment saved before tuner/tracking existed still resumes: Ray's tuner.pkl names the old module paths.

Checked by hand once (the note of issue 35): a smoke-sized search started by 7e58c13, its driver killed after
one trial finished, resumed by today's code to 8/8 trials with that trial kept and no run left RUNNING. Here:
the pickled reference itself, and the tracker's state as the old code pickled it (no `error_line`).
"""

from __future__ import annotations

import pickle

import pytest

from tuner.run.moved_modules import MOVED, old_paths
from tuner.tracking.writer import MlflowTracker, restored_error_line

OLD_TRACKER = b"ctuner.run.tracking\nMlflowTracker\n."  # what a pickle of the class named before the move holds


def test_an_old_module_path_loads_as_the_new_module_while_restoring_and_only_then() -> None:
    with pytest.raises(ModuleNotFoundError):
        pickle.loads(OLD_TRACKER)
    with old_paths():
        assert pickle.loads(OLD_TRACKER) is MlflowTracker
    with pytest.raises(ModuleNotFoundError):
        pickle.loads(OLD_TRACKER)


def test_every_old_path_names_a_module_that_imports() -> None:
    with old_paths():
        for old in MOVED:
            assert __import__(old, fromlist=["_"]).__name__ == MOVED[old]


def test_a_tracker_pickled_before_error_line_was_passed_in_gets_ray_s_own_line() -> None:
    tracker = MlflowTracker.__new__(MlflowTracker)
    tracker.__setstate__({"tracking_uri": "sqlite:///x.db", "name": "x", "spec": {}, "experiment_dir": "."})
    assert tracker.error_line is restored_error_line

    class Trial:
        def get_pickled_error(self) -> BaseException:
            return RuntimeError("boom\nmore")

    assert tracker.error_line(Trial()) == "RuntimeError: boom"
