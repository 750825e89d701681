"""Helpers the benchmark scripts share: `--set KEY=VALUE` options, a silenced stderr, the profiler's CPU proxy.

Imported as `benchmarks._tools` after a script has put the repository first on `sys.path` (see any
script's top); it imports torch only for type names, nothing of ray, mlflow or optuna.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import yaml


def parse_sets(items: list[str], program: str = "benchmark") -> dict[str, Any]:
    """`KEY=VALUE` pairs, each VALUE read as YAML (`null`, `64`, `[query, value]`); a malformed one exits."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise SystemExit(f"{program}: --set {item!r} is not KEY=VALUE")
        out[key.strip()] = yaml.safe_load(value)
    return out


@contextmanager
def quiet_stderr() -> Iterator[None]:
    """File descriptor 2 silenced for the block: C++ logging (the profiler's start and stop lines) that
    Python's sys.stderr never sees."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def top_level_aten(event: Any) -> bool:
    """An aten op called from outside any other aten op (what the dispatcher sees: the CPU proxy for launches)."""
    if not event.name.startswith("aten::"):
        return False
    parent = event.cpu_parent
    while parent is not None:
        if parent.name.startswith("aten::"):
            return False
        parent = parent.cpu_parent
    return True
