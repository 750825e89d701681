"""Where each experiment lives, so that every command finds it by name from any folder.

Why: a spec's `storage.path` is relative to the spec file, while a command typed later runs from
wherever the user stands. `run` therefore records `name -> storage folder` in a small user-level
index (`$SHARPTUNE_HOME/experiments.json`, by default `~/.sharptune/experiments.json`), and `resume`,
`list`, `report`, `ui`, `export` and `dashboard` share one rule to find NAME:

1. `--storage DIR` when given;
2. else `./results/NAME` when it exists (the default storage, relative to the current folder);
3. else the folder `run` recorded for NAME in the index.

When none holds it, one line says where it looked and how to point at it (`--storage DIR`). The index
is a convenience, never the truth: a missing or unwritable one only means the fallback error. Stdlib only.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from tuner.errors import UserError
from tuner.layout import DB_NAME, DEFAULT_STORAGE, STATE_FILE, experiment_path

HOME_ENV = "SHARPTUNE_HOME"
INDEX_FILE = "experiments.json"
STORAGE_HELP = ("results folder holding <name>/ (default: ./results when it holds NAME, else the folder `run` "
                f"recorded for NAME in ~/.sharptune/{INDEX_FILE}, ${HOME_ENV}/{INDEX_FILE} when set)")


def index_path() -> Path:
    """The index file: `$SHARPTUNE_HOME/experiments.json`, else `~/.sharptune/experiments.json`."""
    home = os.environ.get(HOME_ENV) or os.path.join(os.path.expanduser("~"), ".sharptune")
    return Path(home).expanduser() / INDEX_FILE


def _read() -> dict[str, str]:
    try:
        data = json.loads(index_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def remember(name: str, storage: str | Path) -> None:
    """Record that experiment `name` lives in `storage` (the newest run of a name wins); best effort."""
    path = index_path()
    entries = {**_read(), name: str(Path(storage).expanduser().resolve())}
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(dict(sorted(entries.items())), indent=1), encoding="utf-8")
        os.replace(tmp, path)  # two drivers at once: the last whole file wins, never half of one
    except OSError:
        tmp.unlink(missing_ok=True)


def _holds(storage: Path, name: str) -> bool:
    folder = storage / name
    return (folder / STATE_FILE).is_file() or (folder / DB_NAME).is_file()


def locate(name: str, storage: str | Path | None, *, required: bool = True) -> Path:
    """The storage folder that holds experiment `name`, by the rule above.

    With `required=False` (a `--tracking-uri` names the store) a name found nowhere gets the default storage
    instead of the error."""
    if storage is not None:
        return Path(storage).expanduser().resolve()
    local = Path(DEFAULT_STORAGE).resolve()
    experiment_path(local, name)  # a name that is not one folder is refused here, with its own line
    if _holds(local, name):
        return local
    recorded = _read().get(name)
    if recorded and _holds(Path(recorded), name):
        return Path(recorded)
    if not required:
        return local
    index = index_path()
    note = (f"{index} points at {Path(recorded) / name}, which is gone" if recorded
            else f"{index} has no record of it")
    raise UserError(f"no experiment {name!r}: looked in {local} (./{DEFAULT_STORAGE}) and {note}; pass "
                    f"--storage DIR, the folder of the spec's storage.path (default: results/ beside the spec file)")


def storages(storage: str | Path | None = None) -> list[Path]:
    """The storage folders `list` shows: `--storage DIR` alone, else ./results and every recorded folder."""
    if storage is not None:
        return [Path(storage).expanduser().resolve()]
    found = [Path(DEFAULT_STORAGE).resolve(), *(Path(p) for p in _read().values())]
    unique = list(dict.fromkeys(found))
    return [p for p in unique if p.is_dir()]
