"""A failed trial's error as one line, the real one, for the console, the summary and MLflow's error tag.

Ray keeps a trial's last error twice: pickled (the exception itself) and as text, first in the driver's
staging folder, later copied to storage. `error_line` reads whichever exists, the staging copy first.
A trial the stall watch stopped, or an errored trial replayed on resume, keeps its own words.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import cloudpickle

from tuner.errors import cause_of, clip
from tuner.errors import exception_line as one_line
from tuner.run.stall import STALL_ATTR
from tuner.trial.protocol import RecordedError


def error_line(trial: Any) -> str:
    """`Type: message` (the message's first line) of a Ray trial's last error.

    From the exception Ray pickled (a RayTaskError is unwrapped to the trainable's own exception), else
    the last line of Ray's error.txt, else a fixed text. Ray writes both in the driver's staging folder
    first and copies them to storage later, so the staging copy is read first: at `on_trial_error` the
    storage copy does not exist yet (a killed worker or an OOM read "no message" before). A trial the
    stall watch stopped gives the watch's reason (`tuner.run.stall`), not its actor's death."""
    stalled = getattr(trial, STALL_ATTR, None)
    if isinstance(stalled, str):
        return stalled
    exc = None
    with contextlib.suppress(Exception):  # an unpicklable error: fall back to the text
        staged = getattr(trial, "pickled_error_file", None)
        if staged and Path(staged).exists():
            with open(staged, "rb") as fh:
                exc = cloudpickle.load(fh)
    if not isinstance(exc, BaseException):
        with contextlib.suppress(Exception):  # storage gone: fall back to the text
            exc = trial.get_pickled_error()
    if isinstance(exc, BaseException):
        return exception_line(exc)
    text = None
    with contextlib.suppress(Exception):
        staged = getattr(trial, "error_file", None)
        if staged and Path(staged).exists():
            text = Path(staged).read_text()
    if text is None:
        with contextlib.suppress(Exception):
            text = trial.get_error()
    lines = [line.strip() for line in str(text or "").splitlines() if line.strip()]
    return clip(lines[-1]) if lines else "error (Ray recorded no message)"


def exception_line(exc: BaseException) -> str:
    """`Type: first message line` of a trial's exception (a RayTaskError is unwrapped to the trainable's); a
    replayed trial's recorded error reads as recorded."""
    cause = cause_of(exc)
    return clip(str(cause)) if isinstance(cause, RecordedError) else one_line(cause)


OOM_SIGNS = ("outofmemoryerror", "out of memory", "cuda error: out of memory", "memoryerror")
OOM_HINT = ("hint: lower workload.options.batch_size, set `precision: bf16`, or give each trial more of a GPU "
            "(resources.gpu)")


def with_hint(line: str) -> str:
    """An error line with what to try when it is a known kind (today: out of memory)."""
    return f"{line} ({OOM_HINT})" if any(sign in line.lower() for sign in OOM_SIGNS) else line

