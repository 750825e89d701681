"""The module paths an experiment saved before tuner/tracking existed names, for its resume.

Ray pickles a run's callbacks (the MLflow tracker, its outage buffer) into `tuner.pkl` by module path. The
MLflow code moved to `tuner/tracking/` (issue 35); an experiment interrupted before that move names the old
paths. `old_paths()` makes them importable, as the new modules, while Ray restores such a folder, and only then:
nothing else sees the old names.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
from collections.abc import Iterator

MOVED = {
    "tuner.run.tracking": "tuner.tracking.writer",
    "tuner.run.outage": "tuner.tracking.outage",
    "tuner.run.tracking_backfill": "tuner.tracking.backfill",
    "tuner.run.store_check": "tuner.tracking.store_check",
    "tuner.results.store": "tuner.tracking.reader",
}


@contextlib.contextmanager
def old_paths() -> Iterator[None]:
    """Inside, each old module path imports as its new module."""
    added = [old for old in MOVED if old not in sys.modules]
    for old in added:
        sys.modules[old] = importlib.import_module(MOVED[old])
    try:
        yield
    finally:
        for old in added:
            sys.modules.pop(old, None)
