"""YAML with line numbers, and the small readers that turn one field into a checked value or a SpecError.

`_Loader` is a safe loader that records the line of every key and item, rejects duplicate keys and
reads `1e-4` as a number. `_Block` is one mapping of the file under a dotted path.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, NoReturn

import yaml

from tuner.spec.model import SCALAR_TYPES, TIME_UNITS, TOP_KEYS, SpecError
from tuner.value_rules import is_number as _is_number

MAX_SPEC_BYTES = 1_000_000


class _Map(dict):
    """A mapping from the file that remembers the line of each key."""

    line: int = 0
    key_lines: dict[Any, int]


class _Seq(list):
    """A list from the file that remembers the line of each item."""

    line: int = 0
    item_lines: list[int]


class _DuplicateKey(yaml.MarkedYAMLError):
    pass


class _Loader(yaml.SafeLoader):
    """Safe YAML that records line numbers, rejects duplicate keys and reads 1e-4 as a number."""


def _construct_map(loader: _Loader, node: yaml.MappingNode) -> Iterable[_Map]:
    out = _Map()
    out.line, out.key_lines = node.start_mark.line + 1, {}
    yield out
    loader.flatten_mapping(node)
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise _DuplicateKey(problem="a mapping key must be a plain scalar",
                                problem_mark=key_node.start_mark) from None
        if key in out:
            raise _DuplicateKey(problem=f"duplicate key {key!r} (first on line {out.key_lines[key]})",
                                problem_mark=key_node.start_mark)
        out[key] = loader.construct_object(value_node, deep=True)
        out.key_lines[key] = key_node.start_mark.line + 1


def _construct_seq(loader: _Loader, node: yaml.SequenceNode) -> Iterable[_Seq]:
    out = _Seq()
    out.line, out.item_lines = node.start_mark.line + 1, [n.start_mark.line + 1 for n in node.value]
    yield out
    out.extend(loader.construct_object(n, deep=True) for n in node.value)


_Loader.add_constructor("tag:yaml.org,2002:map", _construct_map)
_Loader.add_constructor("tag:yaml.org,2002:seq", _construct_seq)
_Loader.add_implicit_resolver(  # YAML 1.1 wants 1.0e-4; people write 1e-4
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."))


# --- small readers: each returns the checked value or raises SpecError -------------------------
_REQUIRED = object()


def _kind(value: Any) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string", type(None): "null",
             _Map: "a mapping", _Seq: "a list", dict: "a mapping", list: "a list"}
    return names.get(type(value), type(value).__name__)


def did_you_mean(value: Any, choices: Iterable[str]) -> str:
    """`; did you mean 'x'?` for a near miss among `choices` (a typo), else nothing."""
    close = difflib.get_close_matches(str(value), list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


class _Block:
    """One mapping of the file under a dotted path: take fields one by one, reject unknown keys."""

    def __init__(self, file: str, data: Any, path: str, line: int | None, keys: Iterable[str],
                 allowed_note: str | None = None) -> None:
        self.file, self.path = file, path
        if not isinstance(data, dict):
            self.fail_at(path, line, f"must be a mapping, got {_kind(data)}", allowed_note)
        self.data: dict[Any, Any] = data
        self.line = getattr(data, "line", None) or line
        keys = tuple(keys)
        for key in data:
            if key not in keys:
                self.fail_at(self.sub(key), self.line_of(key), f"unknown key {key!r}{did_you_mean(key, keys)}",
                             ", ".join(keys))

    def sub(self, key: Any) -> str:
        return f"{self.path}.{key}" if self.path else str(key)

    def line_of(self, key: Any) -> int | None:
        return getattr(self.data, "key_lines", {}).get(key, self.line)

    def fail_at(self, path: str, line: int | None, problem: str, allowed: str | None = None) -> NoReturn:
        raise SpecError(self.file, line, path, problem, allowed)

    def fail(self, key: str, problem: str, allowed: str | None = None) -> NoReturn:
        self.fail_at(self.sub(key), self.line_of(key), problem, allowed)

    def has(self, key: str) -> bool:
        return self.data.get(key) is not None

    def take(self, key: str, check: Callable[[_Block, str, Any], Any], default: Any = _REQUIRED) -> Any:
        if self.data.get(key) is None:
            if default is _REQUIRED:
                self.fail_at(self.sub(key), self.line, "is required")
            return default
        return check(self, key, self.data[key])

    def block(self, key: str, keys: Iterable[str], allowed_note: str | None = None) -> _Block:
        return _Block(self.file, self.data.get(key) if self.has(key) else _Map(), self.sub(key),
                      self.line_of(key), keys, allowed_note)


def _string(pattern: re.Pattern[str] | None = None, note: str | None = None) -> Callable[..., str]:
    def check(b: _Block, key: str, value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            b.fail(key, f"must be a non-empty string, got {_kind(value)} {value!r}", note)
        if pattern is not None and not pattern.fullmatch(value):
            b.fail(key, f"bad characters in {value!r}", note)
        return value
    return check


def _choice(table: Iterable[str]) -> Callable[..., str]:
    allowed = tuple(table)

    def check(b: _Block, key: str, value: Any) -> str:
        if value not in allowed or not isinstance(value, str):
            b.fail(key, f"unknown value {value!r}{did_you_mean(value, allowed)}", ", ".join(allowed))
        return value
    return check


def _int(low: int, high: int | None = None) -> Callable[..., int]:
    note = f"an integer >= {low}" + (f" and <= {high}" if high is not None else "")

    def check(b: _Block, key: str, value: Any) -> int:
        if not _is_number(value) or not float(value).is_integer():
            b.fail(key, f"must be an integer, got {_kind(value)} {value!r}", note)
        if value < low or (high is not None and value > high):
            b.fail(key, f"out of range: {value!r}", note)
        return int(value)
    return check


def _number(low: float, high: float, low_open: bool = False) -> Callable[..., float]:
    note = (f"a number {'>' if low_open else '>='} {low:g} and <= {high:g}" if math.isfinite(high - low)
            else "a finite number")

    def check(b: _Block, key: str, value: Any) -> float:
        if not _is_number(value):
            b.fail(key, f"must be a number, got {_kind(value)} {value!r}", note)
        if value < low or (low_open and value == low) or value > high:
            b.fail(key, f"out of range: {value!r}", note)
        return value
    return check


def _duration(b: _Block, key: str, value: Any) -> float:
    """`90s`, `30m`, `2h`, `1h30m`, `1d` or a number of seconds; > 0."""
    note = "a duration such as 90s, 30m, 2h, 1h30m, or seconds as a number > 0"
    if _is_number(value):
        seconds = float(value)
    elif isinstance(value, str) and re.fullmatch(r"(\s*\d+(\.\d+)?\s*[smhd])+\s*", value):
        seconds = sum(float(n) * TIME_UNITS[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)\s*([smhd])", value))
    else:
        b.fail(key, f"bad duration {value!r}", note)
    if seconds <= 0:
        b.fail(key, f"must be positive, got {value!r}", note)
    return seconds


def _list_of(item: Callable[..., Any], *, non_empty: bool = True, unique: bool = True) -> Callable[..., tuple]:
    def check(b: _Block, key: str, value: Any) -> tuple[Any, ...]:
        if not isinstance(value, list):
            b.fail(key, f"must be a list, got {_kind(value)}")
        if non_empty and not value:
            b.fail(key, "must not be empty")
        lines = getattr(value, "item_lines", [])
        holder = _Map({str(i): v for i, v in enumerate(value)})
        holder.line = b.line_of(key) or 0
        holder.key_lines = {str(i): lines[i] if i < len(lines) else holder.line for i in range(len(value))}
        items = _Block(b.file, holder, b.sub(key), holder.line, holder.keys())
        out = tuple(item(items, str(i), v) for i, v in enumerate(value))
        if unique and len(set(map(repr, out))) != len(out):
            b.fail(key, f"repeated entries in {list(out)!r}")
        return out
    return check


def _scalar(b: _Block, key: str, value: Any) -> Any:
    if not isinstance(value, SCALAR_TYPES) or (isinstance(value, float) and not math.isfinite(value)):
        b.fail(key, f"choices must be plain values, got {_kind(value)}",
               "strings, numbers, booleans, null; use {value: [...]} for a fixed list")
    return value


def _boolean(b: _Block, key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        b.fail(key, f"must be true or false, got {_kind(value)} {value!r}", "true, false")
    return value



def _apply_override(file: str, data: dict[Any, Any], item: str) -> tuple[str, str]:
    """Put one `KEY=VALUE` into the spec's data; (KEY, item) so that errors can name the override."""
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise SpecError(file, None, "--set", f"bad override {item!r}", "KEY=VALUE with a dotted KEY, "
                        "e.g. --set budget.trial_grad_evals=60")
    try:
        value = yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader subclass
    except yaml.YAMLError:
        raise SpecError(file, None, key, f"--set {item}: the value is not valid YAML") from None
    node: Any = data
    parts = key.split(".")
    for depth, part in enumerate(parts[:-1]):
        child = node.get(part) if isinstance(node, dict) else None
        if child is None and isinstance(node, dict):
            child = node[part] = _Map()
            child.key_lines = {}
        if not isinstance(child, dict):
            where = ".".join(parts[: depth + 1])
            raise SpecError(file, None, key, f"--set {item}: {where} is {_kind(child)}, not a mapping")
        node = child
    node[parts[-1]] = value
    if isinstance(node, _Map):
        node.key_lines.pop(parts[-1], None)  # no line in the file holds this value now
    return key, item


def _read_yaml(file: str) -> Any:
    """The file's YAML data, or a SpecError for anything that is not a readable YAML mapping."""
    p = Path(file)
    if not p.exists():
        raise SpecError(file, None, "", "no such file", "a path to a YAML spec file")
    if p.is_dir():
        raise SpecError(file, None, "", "is a directory", "a path to a YAML spec file")
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise SpecError(file, None, "", f"cannot read: {exc.strerror}") from None
    if len(raw) > MAX_SPEC_BYTES:
        raise SpecError(file, None, "", f"too large ({len(raw)} bytes)", f"at most {MAX_SPEC_BYTES} bytes")
    if b"\x00" in raw:
        raise SpecError(file, None, "", "binary data, not a YAML text file", "UTF-8 YAML text")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise SpecError(file, line, "", f"not UTF-8 text (byte {exc.start})", "UTF-8 YAML text") from None
    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = " ".join(str(exc.problem or exc.context or "").split())
        raise SpecError(file, line, "", f"YAML syntax error: {problem}", "valid YAML") from None
    except yaml.YAMLError as exc:
        raise SpecError(file, None, "", f"YAML error: {exc}", "valid YAML") from None
    except RecursionError:
        raise SpecError(file, None, "", "YAML nested too deeply", "valid YAML") from None
    if data is None:
        raise SpecError(file, None, "", "empty spec", "a mapping with at least name, metric, workload, "
                        "methods, budget")
    if not isinstance(data, dict):
        raise SpecError(file, 1, "", f"top level must be a mapping, got {_kind(data)}",
                        "a mapping of " + ", ".join(TOP_KEYS))
    return data


