"""Reading a user's data files for the generic Hugging Face workloads, and checking them cheaply.

A data option names a CSV, JSONL (`.jsonl`/`.json`, one object per line), Parquet or plain-text
(`.txt`, one document per line) file, or a folder written by `datasets`' `save_to_disk`. The checks
(`columns`) read only a header or the saved schema, so a spec is validated in milliseconds; `read`
loads the rows when the workload is built. Every problem is a `WorkloadError` that names the option
and the file.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from tuner.workloads._options import WorkloadError

SUFFIXES = (".csv", ".jsonl", ".json", ".parquet", ".txt")
TEXT_COLUMN = "text"  # the one column of a .txt file


def _fail(workload: str, option: str, path: Path, problem: str) -> WorkloadError:
    return WorkloadError(f"{workload}: option {option!r}: {path}: {problem}")


def _kind(workload: str, option: str, path: Path) -> str:
    if path.is_dir():
        if (path / "dataset_dict.json").exists():
            raise _fail(workload, option, path, "is a DatasetDict; name one split's folder (e.g. .../train)")
        if not (path / "dataset_info.json").exists():
            raise _fail(workload, option, path, "is a folder but not one written by datasets' save_to_disk")
        return "disk"
    if not path.exists():
        raise _fail(workload, option, path, "no such file")
    if path.suffix.lower() not in SUFFIXES:
        raise _fail(workload, option, path, f"unknown file type (allowed: {', '.join(SUFFIXES)} or a "
                    "save_to_disk folder)")
    return path.suffix.lower().lstrip(".")


def columns(workload: str, option: str, path: Path) -> list[str]:
    """The column names of a data file or folder, read from its header or schema only."""
    kind = _kind(workload, option, path)
    try:
        if kind == "disk":
            return list(json.loads((path / "dataset_info.json").read_text())["features"])
        if kind == "csv":
            import pandas as pd

            return [str(c) for c in pd.read_csv(path, nrows=0).columns]
        if kind in ("jsonl", "json"):
            with path.open(encoding="utf-8") as handle:
                first = handle.readline()
            return list(json.loads(first)) if first.strip() else []
        if kind == "parquet":
            import pyarrow.parquet as pq

            return list(pq.read_schema(path).names)
    except (OSError, ValueError, KeyError) as exc:
        raise _fail(workload, option, path, f"unreadable: {type(exc).__name__}: {exc}") from None
    return [TEXT_COLUMN]


def check_columns(workload: str, option: str, path: Path, wanted: dict[str, str | None]) -> None:
    """Every column an option names (`{"text_column": "text", ...}`) exists in the file."""
    found = columns(workload, option, path)
    for column_option, column in wanted.items():
        if column is not None and column not in found:
            raise WorkloadError(f"{workload}: option {column_option!r} = {column!r}: no such column in {path} "
                                f"(columns: {', '.join(found) or 'none'})")


@lru_cache(maxsize=8)
def _read(path: str, mtime: float, names: tuple[str, ...]) -> dict[str, tuple[Any, ...]]:
    file = Path(path)
    kind = file.suffix.lower().lstrip(".") if file.is_file() else "disk"
    if kind == "txt":
        lines = [line.strip() for line in file.read_text(encoding="utf-8").splitlines()]
        return {TEXT_COLUMN: tuple(line for line in lines if line)}
    if kind == "disk":
        from datasets import load_from_disk

        data = load_from_disk(str(file))
        return {n: tuple(data[n]) for n in names}
    import pandas as pd

    frame = {"csv": pd.read_csv, "parquet": pd.read_parquet}.get(kind) or (lambda p: pd.read_json(p, lines=True))
    table = frame(file)
    return {n: tuple(table[n].tolist()) for n in names}


def read(workload: str, option: str, path: Path, names: list[str]) -> dict[str, tuple[Any, ...]]:
    """The named columns of a data file (once per process and file version)."""
    check_columns(workload, option, path, {n: n for n in names})
    stamp = max((p.stat().st_mtime for p in ([path, *path.iterdir()] if path.is_dir() else [path])), default=0.0)
    return _read(str(path), stamp, tuple(names))


def check_checkpoint(workload: str, option: str, path: Path) -> None:
    """`path` is a folder holding a transformers checkpoint (a config.json and weights)."""
    if not path.is_dir():
        raise _fail(workload, option, path, "no such folder (a local transformers checkpoint folder)")
    if not (path / "config.json").exists():
        raise _fail(workload, option, path, "not a transformers checkpoint (no config.json)")
    weights = [p for p in path.iterdir() if p.suffix in (".safetensors", ".bin") or p.name.endswith(".index.json")]
    if not weights:
        raise _fail(workload, option, path, "not a transformers checkpoint (no weights: *.safetensors or *.bin)")
