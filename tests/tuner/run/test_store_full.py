"""A full store is recognised in any exception chain, and Ray's traceback of it stays off the screen
(the runner says it in one line: tuner.run.store_full)."""

from __future__ import annotations

import errno
import logging
import sqlite3

from tuner.run.store_full import RAY_WRITERS, quiet_ray_writers, write_failure


def _wrapped(inner: BaseException) -> RuntimeError:
    """`inner` two levels down a chain, as MLflow wraps SQLite's error."""
    try:
        try:
            raise inner
        except BaseException as exc:
            raise ValueError("(raised as a result of Query-invoked autoflush)") from exc
    except ValueError as exc:
        try:
            raise RuntimeError("store failed") from exc
        except RuntimeError as outer:
            return outer


def test_write_failure_is_found_down_the_chain() -> None:
    assert write_failure(_wrapped(sqlite3.OperationalError("database or disk is full")))
    assert write_failure(_wrapped(OSError(errno.ENOSPC, "No space left on device")))
    assert not write_failure(_wrapped(sqlite3.OperationalError("no such table: runs")))
    assert not write_failure(_wrapped(OSError(errno.ENOENT, "No such file or directory")))


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def _log_with(logger: logging.Logger, exc: BaseException, text: str) -> None:
    try:
        raise exc
    except BaseException:
        logger.exception(text)


def test_rays_traceback_of_a_full_store_is_dropped_and_others_kept() -> None:
    quiet_ray_writers()
    quiet_ray_writers()  # idempotent: one filter per logger
    for name in RAY_WRITERS:
        logger = logging.getLogger(name)
        assert sum(type(f).__name__ == "StoreFullLogs" for f in logger.filters) == 1
        lines = _Lines()
        logger.addHandler(lines)
        try:
            _log_with(logger, _wrapped(sqlite3.OperationalError("database or disk is full")),
                      "Trial t: Error stopping trial.")
            logger.error("Saving experiment state failed: [Errno 28] No space left on device")
            _log_with(logger, _wrapped(KeyError("metric")), "Trial t: Error stopping trial.")
        finally:
            logger.removeHandler(lines)
        assert lines.lines == ["Trial t: Error stopping trial."], name  # only the unrelated failure
