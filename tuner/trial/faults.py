"""Test-only fault injection: kill a trial's process once, mid-training, to exercise Ray's retries and resume.

It exists so that the end-to-end tests can prove a trial whose process dies resumes from its checkpoint
(and that the tracker keeps one run for it) without a real crash. A user never sets it: the fault comes
from the `SHARPTUNE_FAULT` environment variable (`tuner.trial.setup.FAULT_ENV`) through `TrialSetup.fault`,
and without it `maybe_fault` returns at once. Kept out of `tuner.trial.trainable` so the trial loop reads
as what runs in production.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

EXIT_CODE = 17  # what the killed process exits with (a test may look for it)


def maybe_fault(fault: Mapping[str, Any] | None, method: str, grad_evals: float) -> None:
    """Kill this process once `grad_evals` reaches `fault["kill_at_grad_evals"]` (for `fault["method"]`
    only, when given); the marker file, created exclusively, proves it happened and keeps it to once."""
    if not fault or grad_evals < float(fault["kill_at_grad_evals"]):
        return
    if fault.get("method") not in (None, method):
        return
    try:
        fd = os.open(fault["marker"], os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return
    os.write(fd, json.dumps({"pid": os.getpid(), "grad_evals": grad_evals}).encode())
    os.close(fd)
    os._exit(EXIT_CODE)
