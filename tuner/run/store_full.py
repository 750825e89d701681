"""A store that can no longer be written (a full disk, a quota, a read-only mount) ends a run in one line.

The failure can surface from any writer: MLflow's SQLite store ("database or disk is full"), the Optuna
journal or Ray's state (`OSError: [Errno 28] No space left on device`), often wrapped by Ray in a
`TuneError` whose text is the original traceback. `write_failure` recognises it in the exception's chain
or text; the runner then saves the experiment as interrupted and says where, how much space is free,
and how to resume (which, once space is back, loses nothing: `tuner.run.searcher`).
"""

from __future__ import annotations

import errno
import logging
import shutil
from pathlib import Path

# what the writers say when the disk is the problem (the OS's words, SQLite's, the OS's for quotas)
SIGNS = ("no space left on device", "database or disk is full", "disk quota exceeded", "read-only file system",
         "attempt to write a readonly database")
ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)


def write_failure(exc: BaseException) -> bool:
    """True when `exc`, or an exception in its chain, is a failure to write storage."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in ERRNOS:
            return True
        if any(sign in str(current).lower() for sign in SIGNS):
            return True
        current = current.__cause__ or current.__context__
    return False


class StoreFullLogs(logging.Filter):
    """Drops a log record whose exception (or text) is a full store: the runner says it in one line.

    Ray logs a callback's failure with its traceback before it acts on it ("Trial ...: Error stopping
    trial." when our tracker's last write hits a full disk), and a failed state save the same way.
    """

    def __init__(self) -> None:
        super().__init__("sharptune-store-full")

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None and write_failure(exc):
            return False
        return not any(sign in record.getMessage().lower() for sign in SIGNS)


# the Ray loggers that print a traceback when a write fails (Ray 2.60: the controller's callbacks and
# checkpoints, the experiment state's sync, the final snapshot)
RAY_WRITERS = ("ray.tune.execution.tune_controller", "ray.tune.execution.experiment_state", "ray.tune.tune")
STORE_FULL_LOGS = StoreFullLogs()


def quiet_ray_writers() -> None:
    """Keep Ray's tracebacks of a full store off the screen (idempotent)."""
    for name in RAY_WRITERS:
        logger = logging.getLogger(name)
        if STORE_FULL_LOGS not in logger.filters:
            logger.addFilter(STORE_FULL_LOGS)


def free_space(folder: str | Path) -> str:
    """Free space on the disk that holds `folder` (or its nearest existing parent), e.g. `0.0 MB`."""
    path = Path(folder)
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        free = shutil.disk_usage(path).free
    except OSError:
        return "unknown"
    return f"{free / 2**20:.1f} MB" if free < 2**30 else f"{free / 2**30:.1f} GB"


def message(folder: str | Path, name: str, storage: str) -> str:
    """The one line a run cut short by its store prints."""
    return (f"cannot write the experiment's store in {folder} ({free_space(folder)} free on its disk): "
            f"the run stopped and is saved as interrupted; free space, then `python -m tuner resume {name} "
            f"--storage {storage}` continues it")
