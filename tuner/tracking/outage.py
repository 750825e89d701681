"""A tracking server that goes away mid-run: notice it, say so once, retry on a clock, say when it is back.

The driver's tracker must never stop the study because MLflow is down: trials keep training and their
metric rows wait in a bounded buffer (`MAX_BUFFERED_ROWS`). Rows beyond the bound are dropped from memory
only: Ray keeps every report in the experiment folder, and `tuner.tracking.backfill` writes what MLflow lacks
once the server answers again (at the end of the run, or at `resume` when it stayed down).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

RETRY_SECONDS = 5.0  # between attempts while the server is down
MAX_BUFFERED_ROWS = 200_000  # metric rows kept in memory during an outage (~40 MB)
WAIT_ENV = "SHARPTUNE_MLFLOW_WAIT_S"  # how long the end of a run waits for a server that is down
DEFAULT_WAIT_S = 120.0
_FAST = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
         "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1"}
_SIGNS = ("failed with exception", "max retries exceeded", "connection refused", "connection aborted",
          "connection reset", "read timed out", "timed out", "temporarily unavailable", "error code 5",
          "remote end closed", "name or service not known", "bad gateway", "service unavailable")


def is_transient(exc: BaseException) -> bool:
    """True when the error says the server could not be reached (not that it refused the request)."""
    seen: BaseException | None = exc
    while seen is not None:
        name = type(seen).__name__
        if name in ("ConnectionError", "Timeout", "ConnectTimeout", "ReadTimeout", "ProtocolError",
                    "NewConnectionError", "MaxRetryError", "RemoteDisconnected"):
            return True
        text = str(seen).lower()
        if any(sign in text for sign in _SIGNS):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def wait_seconds() -> float:
    """The end-of-run wait for a server that is down (`SHARPTUNE_MLFLOW_WAIT_S`, default 120 s)."""
    try:
        return max(0.0, float(os.environ.get(WAIT_ENV, DEFAULT_WAIT_S)))
    except ValueError:
        return DEFAULT_WAIT_S


@contextlib.contextmanager
def http_settings(tracking_uri: str, settings: dict[str, str], *, override: bool) -> Iterator[None]:
    """MLflow HTTP client settings (`MLFLOW_HTTP_REQUEST_*`) for a block, for an HTTP store only.

    `override=False` keeps any value the user set; the environment is restored afterwards either way.
    """
    if not tracking_uri.startswith(("http:", "https:")):
        yield
        return
    saved = {k: os.environ.get(k) for k in settings}
    for key, value in settings.items():
        if override:
            os.environ[key] = value
        else:
            os.environ.setdefault(key, value)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def quick_requests(tracking_uri: str) -> contextlib.AbstractContextManager[None]:
    """One retry and a 10 s timeout per request while the driver writes: a down server costs seconds
    per attempt, not MLflow's default minutes of back-off inside a Ray callback."""
    return http_settings(tracking_uri, _FAST, override=False)


class Outage:
    """Whether the server is down, since when, and what the run printed about it."""

    def __init__(self, tracking_uri: str, say: Callable[[str], None] | None = None) -> None:
        self.tracking_uri = tracking_uri
        self.say = say or (lambda text: print(text, file=sys.stderr, flush=True))
        self.since: float | None = None
        self.last_try = 0.0
        self.dropped = 0
        self.outages = 0

    @property
    def down(self) -> bool:
        return self.since is not None

    def due(self) -> bool:
        """Up, or down long enough since the last attempt to try again."""
        return self.since is None or time.monotonic() - self.last_try >= RETRY_SECONDS

    def failed(self, exc: BaseException) -> None:
        self.last_try = time.monotonic()
        if self.since is None:
            self.since = time.monotonic()
            self.outages += 1
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            self.say(f"warning: MLflow server {self.tracking_uri} unreachable ({reason}); the study goes on, "
                     f"metrics are kept and written when it is back (retry every {RETRY_SECONDS:.0f} s)")

    def succeeded(self, written: int) -> None:
        if self.since is not None:
            gone = time.monotonic() - self.since
            extra = f"; {self.dropped} rows beyond the buffer come from Ray's records at the end" \
                if self.dropped else ""
            self.say(f"MLflow server {self.tracking_uri} is back after {gone:.0f} s; wrote {written} buffered "
                     f"metric rows{extra}")
        self.since = None

    def attempt(self, action: Callable[[], Any]) -> bool:
        """Run `action` (MLflow writes); a transient failure marks the outage and returns False."""
        self.last_try = time.monotonic()
        try:
            with quick_requests(self.tracking_uri):
                action()
        except Exception as exc:
            if not is_transient(exc):
                raise
            self.failed(exc)
            return False
        return True
