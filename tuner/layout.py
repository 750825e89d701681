"""Where an experiment lives, written once: its folder and its state file.

The runner writes this layout (`tuner.run`), the results read it (`tuner.results`), the spec fills its
defaults from it (`tuner.spec`) and `list` reads the state without Ray or MLflow. Stdlib only.

    <storage>/<name>/           DEFAULT_STORAGE is ./results, relative to the spec file in a spec
      sharptune.json            STATE_FILE: status, phase, driver pid and host, trial counts
      spec.yaml                 SPEC_FILE: the spec as given (what `resume` reloads)
      resolved_spec.yaml        RESOLVED_FILE: with each method's space (what `validate` prints)
      mlflow.db                 DB_NAME: the default tracking store (`default_tracking_uri`)
      optuna.journal            JOURNAL_FILE: the study (tuner.run.searcher)
      confirm/                  CONFIRM_DIR: Ray's state of the confirmation phase

The MLflow names inside the store (experiment name, tag names) are `tuner.tracking.tags`'.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import socket
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tuner.errors import UserError

DEFAULT_STORAGE = "results"
STATE_FILE = "sharptune.json"
SPEC_FILE = "spec.yaml"
RESOLVED_FILE = "resolved_spec.yaml"  # with each method's space: what `validate` prints
CONFIRM_DIR = "confirm"
JOURNAL_FILE = "optuna.journal"  # the Optuna study (tuner.run.searcher; `tuner dashboard` serves it)
RAY_STATE_FILE = "tuner.pkl"  # Ray's own: a folder holding it can be restored
DB_NAME = "mlflow.db"

def experiment_path(storage: str | Path, name: str) -> Path:
    """`<storage>/<name>`, for a name that stays inside the storage folder.

    Every command that takes an experiment's name (report, export, ui, dashboard, resume) finds its folder
    here, so `../../etc` or `/etc` is refused with one line instead of serving a folder outside the storage."""
    root = Path(storage).expanduser().resolve()
    folder = (root / name).resolve() if name else root
    if not name or "/" in name or "\\" in name or folder.parent != root:
        raise UserError(f"{name!r} is not an experiment name: a name is one folder inside the storage folder "
                        f"{root} (pass --storage DIR to look elsewhere)")
    return folder


def default_tracking_uri(storage: str | Path, name: str) -> str:
    """The default store for `name`: an absolute SQLite URI under the storage folder."""
    return f"sqlite:///{(experiment_path(storage, name) / DB_NAME).as_posix()}"


# --- the state file ---------------------------------------------------------------------------------
def read_state(experiment_dir: str | Path) -> dict[str, Any]:
    """`sharptune.json` of an experiment ({} when absent or unreadable)."""
    try:
        return json.loads((Path(experiment_dir) / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def write_state(experiment_dir: str | Path, **changes: Any) -> dict[str, Any]:
    """Update `sharptune.json` atomically (a killed driver never leaves half a file).

    On a full disk the new file cannot be made: the text is written over the old file's own blocks
    instead, so that a run stopped by its disk is still saved as interrupted."""
    path = Path(experiment_dir) / STATE_FILE
    state = {**read_state(experiment_dir), **changes, "updated": time.time()}
    text = json.dumps(state, indent=1, default=str).encode()
    tmp = path.with_suffix(".tmp")
    try:
        tmp.write_bytes(text)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.errno != errno.ENOSPC or not path.exists():
            raise
        compact = json.dumps(state, separators=(",", ":"), default=str).encode()
        with open(path, "r+b") as fh:  # the blocks it holds already: no new space needed
            fh.write(compact)
            fh.truncate()
    return state


def driver_alive(state: Mapping[str, Any]) -> bool:
    """Is the driver that wrote `state` still running (same host, live pid)?"""
    if state.get("host") != socket.gethostname() or not state.get("pid"):
        return False
    try:
        os.kill(int(state["pid"]), 0)
    except (OSError, ValueError):
        return False
    return True


def shown_status(state: Mapping[str, Any]) -> str:
    """Status for people: a `running` experiment whose driver is gone was interrupted."""
    status = str(state.get("status", "unknown"))
    if status == "running" and not driver_alive(state):
        return "interrupted"
    return status


def experiment_folders(storage: str | Path) -> list[Path]:
    """Experiment folders under `storage` (those holding a state file), by name."""
    root = Path(storage).expanduser()
    return sorted(p.parent for p in root.glob(f"*/{STATE_FILE}")) if root.is_dir() else []


def prune_checkpoints(experiment_dir: Path) -> int:
    """After a completed experiment nothing resumes: keep only each trial's newest checkpoint."""
    removed = 0
    for trial_dir in experiment_dir.glob("**/train_trial_*"):
        checkpoints = sorted(p for p in trial_dir.glob("checkpoint_*") if p.is_dir())
        for old in checkpoints[:-1]:
            shutil.rmtree(old, ignore_errors=True)
            removed += 1
    return removed
