"""Rules for plain values that every layer shares, each written once.

- `is_number`: a finite int or float, never a bool (YAML `true` is not `1`; NaN is no result);
- `same_value`: equal, and a boolean only ever equals a boolean (`when: {nesterov: [true]}` is not `1`);
- `plain`: dicts, lists and scalars only (what YAML and MLflow take);
- `goal_sign`: +1 for `maximize`, -1 for `minimize`, so "larger is better" after multiplying.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

GOALS = ("maximize", "minimize")


def is_number(value: Any) -> bool:
    """A finite int or float that is not a bool."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def same_value(a: Any, b: Any) -> bool:
    """Equal, and a boolean only ever equals a boolean (YAML `true` is not `1`)."""
    return a == b and isinstance(a, bool) == isinstance(b, bool)


def plain(value: Any) -> Any:
    """Plain dict/list/scalars (no line-number subclasses, tuples as lists) for printing and YAML."""
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def goal_sign(goal: str) -> float:
    """+1.0 for maximize, -1.0 for minimize; anything else is a programming error."""
    if goal not in GOALS:
        raise ValueError(f"goal must be maximize or minimize, got {goal!r}")
    return 1.0 if goal == "maximize" else -1.0
