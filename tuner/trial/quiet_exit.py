"""Keep a trial worker's SIGTERM exit from printing a traceback into the user's console.

Ray turns SIGTERM into `SystemExit` wherever the worker happens to be (`ray._private.worker`,
`sigterm_handler`). When the signal lands inside a garbage-collector callback (a `WeakSet` removal, a
`__del__`), Python cannot raise there and prints "Exception ignored in ..." with a full traceback, which
Ray streams to the driver: a healthy run (Ray stopping a finished trial's actor at shutdown) then looks
broken. Only that case is silenced; every other unraisable exception still goes to the default hook.
"""

from __future__ import annotations

import sys
from typing import Any

_DEFAULT_HOOK = sys.unraisablehook


def _hook(unraisable: Any) -> None:
    if isinstance(unraisable.exc_value, SystemExit):
        return  # the worker is being stopped; the exit itself still happens through Ray
    _DEFAULT_HOOK(unraisable)


def install() -> None:
    """Route this process's unraisable exceptions through `_hook` (idempotent)."""
    sys.unraisablehook = _hook
