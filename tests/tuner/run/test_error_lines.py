"""The error line of a failed trial is the real one (issue 29): Ray writes it to the driver's staging
folder before `on_trial_error`, and copies it to storage only later."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import cloudpickle

from tuner.run.stall import STALL_ATTR
from tuner.run.trial_errors import error_line, with_hint
from tuner.trial.protocol import RecordedError


def _trial(tmp_path: Path, exc: BaseException | None = None, text: str | None = None) -> SimpleNamespace:
    pickled = tmp_path / "error.pkl"
    txt = tmp_path / "error.txt"
    if exc is not None:
        pickled.write_bytes(cloudpickle.dumps(exc))
    if text is not None:
        txt.write_text(text)

    def not_in_storage_yet() -> None:
        raise FileNotFoundError("storage copy not made yet")
    return SimpleNamespace(pickled_error_file=str(pickled) if exc is not None else None,
                           error_file=str(txt) if text is not None else None,
                           get_pickled_error=not_in_storage_yet, get_error=not_in_storage_yet)


def test_the_staged_error_is_read_before_storage(tmp_path: Path) -> None:
    trial = _trial(tmp_path, exc=MemoryError("CUDA out of memory. Tried to allocate 20.00 GiB"))
    assert error_line(trial) == "MemoryError: CUDA out of memory. Tried to allocate 20.00 GiB"
    assert "batch_size" in with_hint(error_line(trial))


def test_the_staged_text_when_the_error_did_not_pickle(tmp_path: Path) -> None:
    trial = _trial(tmp_path, text="Failure # 1 (occurred at 2026-12-07)\nActorDiedError: The actor died unexpectedly\n")
    assert error_line(trial) == "ActorDiedError: The actor died unexpectedly"
    assert with_hint(error_line(trial)) == error_line(trial)  # no hint for what it does not know


def test_a_stalled_trial_and_a_replayed_error_keep_their_own_words(tmp_path: Path) -> None:
    trial = _trial(tmp_path, exc=RuntimeError("actor died"))
    setattr(trial, STALL_ATTR, "stalled for 601 s at 40 grad evals")
    assert error_line(trial) == "stalled for 601 s at 40 grad evals"
    replayed = _trial(tmp_path, exc=RecordedError("ValueError: bad shape"))
    assert error_line(replayed) == "ValueError: bad shape"
