"""Errors that the CLI turns into exit codes: a user's mistake (2) or a failure at run time (1)."""

from __future__ import annotations


class UserError(Exception):
    """Bad input (spec, arguments, names): exit code 2, one line, nothing started."""

    exit_code = 2


class RuntimeFailure(Exception):
    """Something broke while running: exit code 1 with a clear message."""

    exit_code = 1


def clip(text: str, limit: int = 500) -> str:
    """`text`, cut to `limit` characters with "..." where it was cut (an error line stays one readable line)."""
    return text if len(text) <= limit else text[:limit - 3] + "..."


def cause_of(exc: BaseException) -> BaseException:
    """The exception a trial itself raised: a RayTaskError's `cause`, else `exc`."""
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, BaseException) else exc


def exception_line(exc: BaseException) -> str:
    """`Type: first message line` of an exception (a RayTaskError unwrapped to its `cause`), clipped: how an
    error reads on one line wherever it is shown (console, summary, MLflow's error tag)."""
    cause = cause_of(exc)
    lines = [line.strip() for line in str(cause).splitlines() if line.strip()]
    return clip(f"{type(cause).__name__}: {lines[0]}" if lines else type(cause).__name__)
