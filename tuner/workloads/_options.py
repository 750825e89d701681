"""Typed, validated workload options: a dataclass per workload, checked field by field.

Each field may carry `check(predicate, allowed)` metadata; `parse_options` rejects unknown names,
wrong types and values outside the allowed set with a one-line `WorkloadError` naming the option.
"""

from __future__ import annotations

import dataclasses
import os
import re
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

from tuner.errors import UserError


class WorkloadError(UserError):
    """Unknown workload, unknown option or impossible option value (one line, names the option).

    `option` is the option at fault, so a spec error can point at its line: the first "option 'name'"
    in the message (every option check words its message so), None when no one option is at fault.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        named = re.search(r"option '(\w+)'", message)
        self.option = named[1] if named else None


T = TypeVar("T")


def option(default: Any, check: Callable[[Any], bool] | None = None, allowed: str = "", *, path: bool = False) -> Any:
    """A dataclass field with a default and an optional value check described by `allowed`.

    `path=True`: a file or folder; a relative one is taken relative to the spec's folder.
    """
    return dataclasses.field(default=default, metadata={"check": check, "allowed": allowed, "path": path})


def with_absolute_paths(cls: type, options: Mapping[str, Any], base: Path) -> dict[str, Any]:
    """`options` with every relative path option (`option(..., path=True)`) made absolute against `base`."""
    out = dict(options)
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        value = out.get(f.name)
        if f.metadata.get("path") and isinstance(value, str) and value:
            target = Path(os.path.expanduser(value))
            out[f.name] = str(target if target.is_absolute() else (base / target).resolve())
    return out


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(v) for v in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(tp))
    if origin is tuple:
        return f"list of {_describe(typing.get_args(tp)[0])}"
    return "null" if tp is type(None) else getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any) -> tuple[bool, Any]:
    """(ok, value converted to `tp`): ints pass as floats, lists as tuples, bools never as numbers."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        return value in typing.get_args(tp), value
    if origin in (typing.Union, types.UnionType):
        for arm in typing.get_args(tp):
            ok, converted = _coerce(value, arm)
            if ok:
                return True, converted
        return False, value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            return False, value
        items = [_coerce(v, typing.get_args(tp)[0]) for v in value]
        return all(ok for ok, _ in items), tuple(v for _, v in items)
    if tp is type(None):
        return value is None, value
    if tp is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return ok, float(value) if ok else value
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    return isinstance(value, tp), value


def parse_options(workload: str, cls: type[T], options: Mapping[str, Any] | None) -> T:
    """Build `cls` from a mapping, validating every field; raises WorkloadError naming the option."""
    options = dict(options or {})
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(options) - set(fields))
    if unknown:
        raise WorkloadError(f"{workload}: unknown option {unknown[0]!r} (allowed: {', '.join(fields)})")
    hints = typing.get_type_hints(cls)
    values = {}
    for name, f in fields.items():
        value = options.get(name, f.default if f.default is not dataclasses.MISSING else f.default_factory())
        ok, value = _coerce(value, hints[name])
        if not ok:
            raise WorkloadError(f"{workload}: option {name!r} = {options[name]!r} has the wrong type "
                                f"(allowed: {_describe(hints[name])})")
        check = f.metadata.get("check")
        if check is not None and value is not None and not check(value):
            raise WorkloadError(f"{workload}: option {name!r} = {value!r} is impossible "
                                f"(allowed: {f.metadata['allowed']})")
        values[name] = value
    parsed = cls(**values)
    problem = getattr(parsed, "problem", lambda: None)()
    if problem:
        raise WorkloadError(f"{workload}: {problem}")
    return parsed
