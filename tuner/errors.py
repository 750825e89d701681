"""Errors that the CLI turns into exit codes: a user's mistake (2) or a failure at run time (1)."""

from __future__ import annotations


class UserError(Exception):
    """Bad input (spec, arguments, names): exit code 2, one line, nothing started."""

    exit_code = 2


class RuntimeFailure(Exception):
    """Something broke while running: exit code 1 with a clear message."""

    exit_code = 1
