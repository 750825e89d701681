"""The experiment spec: one YAML file, parsed into typed frozen dataclasses with every default filled.

Why so strict: a search runs for hours on a cluster, so a typo must fail in a second, on one line that
names the file, the line, the field and what is allowed (`FILE:LINE: field.path: problem (allowed: …)`),
before Ray, MLflow or any trial starts. This module imports neither Ray nor MLflow.

Format (see docs/DESIGN.md §3): W&B-sweep shape on top (`name`, `description`, `metric`, `parameters`),
Optuna's words per parameter (`type: float|int|categorical`, `low`, `high` inclusive, `log`, `step`,
`values`, or a fixed `value`), conditionals `when: {param: [values]}` (`method` selects methods).
Each method brings its default space (`MethodInfo.search_space`); `parameters` overrides it, and a
parameter only ever reaches the methods that accept it (see `Spec.space`).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NoReturn

import yaml

from tuner.errors import UserError

MAX_SPEC_BYTES = 1_000_000
MAX_GRID_POINTS = 10_000
NAME_PATTERN = re.compile(r"[A-Za-z0-9_.-]+")
METRIC_PREFIXES = ("eval/", "train/", "cost/", "diag/")
GOALS = ("maximize", "minimize")
SCALAR_TYPES = (str, int, float, bool, type(None))

# sampler name -> can it optimise several objectives at once?
SAMPLERS: Mapping[str, bool] = {
    "tpe": True, "random": True, "cmaes": False, "gp": True, "qmc": True, "grid": True, "nsga2": True,
}
# scheduler name -> the keys it takes besides `name`
SCHEDULERS: Mapping[str, tuple[str, ...]] = {
    "asha": ("time_attr", "grace_period", "reduction_factor", "max_t"),
    "hyperband": ("time_attr", "reduction_factor", "max_t"),
    "median": ("time_attr", "grace_period"),
    "fifo": (),
}
# time_attr -> whether max_t may default to budget.trial_grad_evals (counters of passes scale with it)
TIME_ATTRS: Mapping[str, bool] = {
    "cost/grad_evals": True, "cost/fwd_passes": True, "cost/bwd_passes": True, "step": True,
    "training_iteration": False, "cost/wall_s": False, "time_total_s": False,
}
TIME_UNITS: Mapping[str, float] = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
TRACKING_SCHEMES = ("sqlite", "http", "https", "file", "postgresql", "mysql")
PARAM_TYPES = ("float", "int", "categorical")
MAX_CPU, MAX_GPU = 512.0, 64.0


class SpecError(UserError):
    """A bad spec: one line `FILE:LINE: FIELD: problem (allowed: …)`."""

    def __init__(self, file: str, line: int | None, field_path: str, problem: str,
                 allowed: str | None = None) -> None:
        where = f"{file}:{line}" if line else file
        text = f"{where}: {field_path}: {problem}" if field_path else f"{where}: {problem}"
        if allowed:
            text += f" (allowed: {allowed})"
        super().__init__(" ".join(text.split()))
        self.file, self.line, self.field, self.problem = file, line, field_path, problem


# --- the typed model ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Objective:
    """A metric and its direction."""

    name: str
    goal: str  # maximize | minimize

    @property
    def mode(self) -> str:
        """Ray Tune's spelling of the goal."""
        return "max" if self.goal == "maximize" else "min"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "goal": self.goal}


@dataclass(frozen=True, eq=False)
class Param:
    """One parameter of the space: a range, a list of choices, or a fixed value, maybe conditional."""

    name: str
    type: str  # float | int | categorical | fixed
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    values: tuple[Any, ...] = ()
    value: Any = None
    when: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    line: int | None = None  # where the spec wrote it; None for a method's default
    origin: str = "spec"  # spec | method default

    @property
    def path(self) -> str:
        return f"parameters.{self.name}"

    def candidates(self) -> tuple[Any, ...] | None:
        """Every value it can take when that is a finite list (grid search), else None."""
        if self.type == "fixed":
            return (self.value,)
        if self.type == "categorical":
            return self.values
        if self.type == "int":
            return tuple(range(int(self.low), int(self.high) + 1, int(self.step or 1)))
        if self.step is None:
            return None
        count = int(round((self.high - self.low) / self.step))
        return tuple(round(self.low + i * self.step, 12) for i in range(count + 1))

    def probes(self) -> tuple[Any, ...]:
        """Values worth checking against a method: the ends, a non-integer middle, every choice."""
        if self.type == "fixed":
            return (self.value,)
        if self.type == "categorical":
            return self.values
        if self.type == "int":
            return (int(self.low), int(self.high))
        middle = math.sqrt(self.low * self.high) if self.log else (self.low + self.high) / 2
        return (self.low, middle, self.high)

    def contains(self, value: Any) -> bool:
        """Can the parameter take `value`? (answers `when:` lists)."""
        if self.type in ("fixed", "categorical"):
            return any(_same(value, v) for v in self.probes())
        if not _is_number(value):
            return False
        return self.low <= value <= self.high and (self.type == "float" or float(value).is_integer())

    def to_dict(self) -> dict[str, Any]:
        """The spec vocabulary again (what `parameters` accepts)."""
        if self.type == "fixed":
            out: dict[str, Any] = {"value": _plain(self.value)}
        elif self.type == "categorical":
            out = {"type": "categorical", "values": list(self.values)}
        else:
            out = {"type": self.type, "low": self.low, "high": self.high}
            if self.log:
                out["log"] = True
            if self.step is not None:
                out["step"] = self.step
        if self.when:
            out["when"] = {k: list(v) for k, v in self.when.items()}
        return out


@dataclass(frozen=True)
class Workload:
    name: str
    options: Mapping[str, Any]  # resolved by tuner.workloads.resolve_options (defaults filled)


@dataclass(frozen=True)
class Sampler:
    name: str
    seed: int


@dataclass(frozen=True)
class Scheduler:
    name: str
    time_attr: str = "cost/grad_evals"
    grace_period: int | None = None
    reduction_factor: float | None = None
    max_t: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, **{k: getattr(self, k) for k in SCHEDULERS[self.name]}}


@dataclass(frozen=True)
class Budget:
    num_samples: int
    max_concurrent_trials: int
    time_s: float | None  # wall-clock limit of the whole search; None: none
    trial_grad_evals: int  # budget of one trial, in gradient evaluations
    eval_every: int  # steps between reports

    def to_dict(self) -> dict[str, Any]:
        return {"num_samples": self.num_samples, "max_concurrent_trials": self.max_concurrent_trials,
                "time": self.time_s, "trial_grad_evals": self.trial_grad_evals, "eval_every": self.eval_every}


@dataclass(frozen=True)
class Resources:
    cpu: float
    gpu: float


@dataclass(frozen=True)
class Confirm:
    top_k: int
    seeds: tuple[int, ...]
    label_noise: tuple[float, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"top_k": self.top_k, "seeds": list(self.seeds), "label_noise": list(self.label_noise)}


@dataclass(frozen=True, eq=False)
class Spec:
    """A validated experiment; `space[method]` is what the tuner samples for that method."""

    path: str  # absolute path of the spec file
    name: str
    description: str
    metric: Objective
    workload: Workload
    methods: tuple[str, ...]
    parameters: Mapping[str, Param]  # as written in the spec
    space: Mapping[str, Mapping[str, Param]]  # per method: defaults + overrides, filtered, in sampling order
    defaults: Mapping[str, Mapping[str, Any]]  # per method: value of each name when not sampled (for `when`)
    sampler: Sampler
    scheduler: Scheduler
    budget: Budget
    resources: Resources
    seed: int
    tracking_uri: str
    storage_path: str
    objectives: tuple[Objective, ...]
    confirm: Confirm | None
    max_failures: int

    @property
    def experiment_dir(self) -> str:
        """Where this experiment keeps its results: `<storage>/<name>`."""
        return os.path.join(self.storage_path, self.name)

    def to_dict(self, include_space: bool = True) -> dict[str, Any]:
        """Resolved config as plain data; with include_space=False it loads again as the same spec."""
        out: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "metric": self.metric.to_dict(),
            "workload": {"name": self.workload.name, "options": _plain(dict(self.workload.options))},
            "methods": list(self.methods),
            "parameters": {k: p.to_dict() for k, p in self.parameters.items()},
            "sampler": {"name": self.sampler.name, "seed": self.sampler.seed},
            "scheduler": self.scheduler.to_dict(),
            "budget": self.budget.to_dict(),
            "resources": {"cpu": self.resources.cpu, "gpu": self.resources.gpu},
            "seed": self.seed,
            "tracking": {"uri": self.tracking_uri},
            "storage": {"path": self.storage_path},
            "objectives": [o.to_dict() for o in self.objectives] or None,
            "confirm": self.confirm.to_dict() if self.confirm else None,
            "max_failures": self.max_failures,
        }
        if include_space:
            out["space"] = {m: {k: p.to_dict() for k, p in s.items()} for m, s in self.space.items()}
        return out


# --- YAML with line numbers -------------------------------------------------------------------
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


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _same(a: Any, b: Any) -> bool:
    """Equal, and a boolean only ever equals a boolean (YAML `true` is not `1`)."""
    return a == b and isinstance(a, bool) == isinstance(b, bool)


def _plain(value: Any) -> Any:
    """Plain dict/list/scalars (no line-number subclasses, tuples as lists) for printing and YAML."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _kind(value: Any) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string", type(None): "null",
             _Map: "a mapping", _Seq: "a list", dict: "a mapping", list: "a list"}
    return names.get(type(value), type(value).__name__)


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
                self.fail_at(self.sub(key), self.line_of(key), f"unknown key {key!r}", ", ".join(keys))

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
            b.fail(key, f"unknown value {value!r}", ", ".join(allowed))
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


def _objective(b: _Block, key: str, value: Any) -> Objective:
    inner = _Block(b.file, value, b.sub(key), b.line_of(key), ("name", "goal"))
    name = inner.take("name", _string())
    if not name.startswith(METRIC_PREFIXES):
        inner.fail("name", f"unknown metric {name!r}", "names starting with " + ", ".join(METRIC_PREFIXES)
                   + ", e.g. eval/accuracy, eval/loss, train/loss, cost/step_time_ms")
    return Objective(name, inner.take("goal", _choice(GOALS)))


# --- loading --------------------------------------------------------------------------------------
TOP_KEYS = ("name", "description", "metric", "workload", "methods", "parameters", "sampler", "scheduler",
            "budget", "resources", "seed", "tracking", "storage", "objectives", "confirm", "max_failures")


def load_spec(path: str | os.PathLike[str], overrides: Sequence[str] = ()) -> Spec:
    """Read, check and resolve a spec file; raise SpecError (one line) on the first problem.

    `overrides` are `--set KEY=VALUE` items (`budget.trial_grad_evals=60`): each VALUE is read as YAML
    and replaces KEY in the file's data before the check, so an override is validated exactly as the
    file is, and an error names the key and the `--set` it came from.
    """
    file = str(path)
    data = _read_yaml(file)
    applied = [_apply_override(file, data, item) for item in overrides]
    try:
        return _parse(file, data)
    except SpecError as exc:
        for key, item in applied:
            if exc.field == key or exc.field.startswith((key + ".", key + "[")) or key.startswith(exc.field + "."):
                raise SpecError(exc.file, None, exc.field, f"{exc.problem} (from --set {item})") from None
        raise


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


def _parse(file: str, data: Any) -> Spec:
    spec_dir = Path(file).resolve().parent
    top = _Block(file, data, "", 1, TOP_KEYS)
    name = top.take("name", _string(NAME_PATTERN, "letters, digits, _ . - (like my-exp_1.2)"))
    if name.startswith(".") or len(name) > 100:
        top.fail("name", f"bad experiment name {name!r}", "1-100 of A-Z a-z 0-9 _ . -, not starting with '.'")
    description = top.take("description", _string(), "")
    metric = top.take("metric", _objective)
    seed = top.take("seed", _int(0, 2**32 - 1), 0)

    workload = _parse_workload(top.block("workload", ("name", "options")))
    methods = top.take("methods", _list_of(_method_name))
    budget_block = top.block("budget", ("num_samples", "max_concurrent_trials", "time", "trial_grad_evals",
                                        "eval_every"))
    sampler_block = top.block("sampler", ("name", "seed"))
    sampler = Sampler(sampler_block.take("name", _choice(SAMPLERS), "tpe"),
                      sampler_block.take("seed", _int(0, 2**32 - 1), seed))

    parameters = _parse_parameters(top, methods, workload)
    trial_grad_evals = budget_block.take("trial_grad_evals", _int(1, 10**12))
    space, defaults = _resolve_space(top, methods, parameters, workload, trial_grad_evals)

    budget = _parse_budget(budget_block, sampler, methods, space, defaults)
    scheduler = _parse_scheduler(top.block("scheduler", ("name", *SCHEDULERS["asha"])), budget)

    resources_block = top.block("resources", ("cpu", "gpu"))
    resources = Resources(resources_block.take("cpu", _number(0, MAX_CPU, low_open=True), 1),
                          resources_block.take("gpu", _number(0, MAX_GPU), 0))

    storage_block = top.block("storage", ("path",))
    storage = storage_block.take("path", _string(), "results")
    storage_path = Path(os.path.expanduser(storage))
    storage_path = (storage_path if storage_path.is_absolute() else spec_dir / storage_path).resolve()
    if storage_path.exists() and not storage_path.is_dir():
        storage_block.fail("path", f"{storage_path} exists and is not a directory", "a directory path")

    tracking_block = top.block("tracking", ("uri",))
    tracking_uri = tracking_block.take("uri", _tracking_uri(spec_dir), None)
    if tracking_uri is None:
        tracking_uri = f"sqlite:///{storage_path / name / 'mlflow.db'}"

    objectives = top.take("objectives", _list_of(_objective), ())
    if objectives:
        names = [o.name for o in objectives]
        if len(objectives) < 2:
            top.fail("objectives", "needs at least two objectives (one objective is `metric`)")
        if len(set(names)) != len(names):
            top.fail("objectives", f"repeated objective names {names}")
        if metric.name not in names:
            top.fail("objectives", f"must include the metric {metric.name!r} (the scheduler ranks by it)")
        if not SAMPLERS[sampler.name]:
            sampler_block.fail("name", f"{sampler.name!r} cannot optimise several objectives",
                               ", ".join(k for k, multi in SAMPLERS.items() if multi))

    confirm = _parse_confirm(top, workload) if top.has("confirm") else None
    return Spec(
        path=str(Path(file).resolve()), name=name, description=description, metric=metric,
        workload=workload, methods=methods, parameters=parameters, space=space, defaults=defaults,
        sampler=sampler, scheduler=scheduler, budget=budget, resources=resources, seed=seed,
        tracking_uri=tracking_uri, storage_path=str(storage_path), objectives=objectives,
        confirm=confirm, max_failures=top.take("max_failures", _int(0, 100), 1),
    )


def _method_name(b: _Block, key: str, value: Any) -> str:
    from methods import list_methods

    names = [m.name for m in list_methods()]
    if value not in names:
        b.fail(key, f"unknown method {value!r}", ", ".join(names))
    return value


def _workload_names() -> list[str]:
    from tuner.workloads import list_workloads

    return [w if isinstance(w, str) else w.name for w in list_workloads()]


def _parse_workload(b: _Block) -> Workload:
    from tuner.workloads import resolve_options

    name = b.take("name", _choice(_workload_names()))
    options = b.take("options", lambda blk, k, v: v, {})
    if not isinstance(options, dict):
        b.fail("options", f"must be a mapping, got {_kind(options)}")
    try:
        resolved = resolve_options(name, dict(options))
    except UserError as exc:
        bad = next((k for k in options if repr(k) in str(exc) or str(k) in str(exc)), None)
        where = b.sub("options") + (f".{bad}" if bad is not None else "")
        line = options.key_lines.get(bad) if bad is not None and isinstance(options, _Map) else None
        raise SpecError(b.file, line or b.line_of("options"), where, str(exc)) from None
    return Workload(name, dict(resolved))


# --- parameters -----------------------------------------------------------------------------------
PARAM_KEYS = ("type", "low", "high", "log", "step", "values", "value", "when")


def _parse_parameters(top: _Block, methods: tuple[str, ...], workload: Workload) -> dict[str, Param]:
    raw = top.data.get("parameters")
    raw = _Map() if raw is None else raw
    if not isinstance(raw, dict):
        top.fail("parameters", f"must be a mapping of parameter names, got {_kind(raw)}")
    b = _Block(top.file, raw, "parameters", top.line_of("parameters"), list(raw))  # names checked below
    out: dict[str, Param] = {}
    for name, value in raw.items():
        if not isinstance(name, str) or not re.fullmatch(r"[a-z_][a-z0-9_]*", name) or name == "method":
            b.fail(name, f"bad parameter name {name!r}",
                   "a hyperparameter of a selected method or a workload option; `method` is set by `methods`")
        out[name] = _parse_param(b, name, value)
    for p in out.values():
        _check_when(b, p, out, methods, workload)
    return out


def _parse_param(parent: _Block, name: str, value: Any, origin: str = "spec") -> Param:
    b = _Block(parent.file, value, parent.sub(name), parent.line_of(name), PARAM_KEYS,
               "a mapping such as {type: float, low: 0.01, high: 0.5, log: true}, {values: [a, b]} "
               "or {value: 0.1}")
    when = _parse_when(b) if b.has("when") else {}
    line = parent.line_of(name)
    given = {k for k in PARAM_KEYS if k in b.data and k != "when"}
    if "value" in b.data:
        extra = sorted(given - {"value"})
        if extra:
            b.fail(extra[0], "a fixed `value` takes no other keys besides `when`", "value, when")
        return Param(name, "fixed", value=b.data["value"], when=when, line=line, origin=origin)
    kind = b.take("type", _choice(PARAM_TYPES), "categorical" if "values" in b.data else _REQUIRED)
    allowed = {"float": {"type", "low", "high", "log", "step"}, "int": {"type", "low", "high", "log", "step"},
               "categorical": {"type", "values"}}[kind]
    extra = sorted(given - allowed)
    if extra:
        b.fail(extra[0], f"not used by type {kind}", ", ".join(sorted(allowed | {"when"})))
    if kind == "categorical":
        values = b.take("values", _list_of(_scalar))
        return Param(name, "categorical", values=values, when=when, line=line, origin=origin)
    number = _int(-(2**62)) if kind == "int" else _number(-math.inf, math.inf)
    low, high = b.take("low", number), b.take("high", number)
    if kind == "float":
        low, high = float(low), float(high)
    log = b.take("log", _boolean, False)
    step = b.take("step", _int(1) if kind == "int" else _number(0, math.inf, low_open=True), None)
    if low > high:
        b.fail("low", f"low {low!r} is greater than high {high!r}", "low <= high")
    if log and low <= 0:
        b.fail("low", f"a log range must be positive, got low {low!r}", "low > 0 with log: true")
    if log and step not in (None, 1):
        b.fail("step", "step and log: true do not go together", "either step or log")
    if kind == "float" and log and step is not None:
        b.fail("step", "step and log: true do not go together", "either step or log")
    if step is not None and kind == "float":
        count = (high - low) / step
        if abs(count - round(count)) > 1e-9 * max(1.0, abs(count)):
            b.fail("step", f"high - low = {high - low:g} is not a multiple of step {step:g}",
                   "a step that divides high - low")
    return Param(name, kind, low=low, high=high, log=log, step=None if (kind == "int" and step == 1) else step,
                 when=when, line=line, origin=origin)


def _scalar(b: _Block, key: str, value: Any) -> Any:
    if not isinstance(value, SCALAR_TYPES) or (isinstance(value, float) and not math.isfinite(value)):
        b.fail(key, f"choices must be plain values, got {_kind(value)}",
               "strings, numbers, booleans, null; use {value: [...]} for a fixed list")
    return value


def _boolean(b: _Block, key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        b.fail(key, f"must be true or false, got {_kind(value)} {value!r}", "true, false")
    return value


def _parse_when(b: _Block) -> dict[str, tuple[Any, ...]]:
    inner = b.data["when"]
    if not isinstance(inner, dict) or not inner:
        b.fail("when", f"must be a non-empty mapping {{param: [values]}}, got {_kind(inner)}",
               "{method: [sam, asam]} or {param: [values]}")
    w = _Block(b.file, inner, b.sub("when"), b.line_of("when"), [k for k in inner if isinstance(k, str)])
    return {k: w.take(k, _list_of(_scalar)) for k in inner}


def _check_when(b: _Block, p: Param, params: Mapping[str, Param], methods: tuple[str, ...],
                workload: Workload) -> None:
    """`when:` must name `method` or another parameter, with values that parameter can take."""
    from methods import get_method

    w = _Block(b.file, b.data[p.name]["when"], f"{p.path}.when", p.line, p.when) if p.when else None
    for cond, values in p.when.items():
        if cond == "method":
            for v in values:
                if v not in methods:
                    w.fail(cond, f"{v!r} is not among the spec's methods", ", ".join(methods))
            continue
        if cond == p.name:
            w.fail(cond, "a parameter cannot depend on itself")
        infos = [get_method(m) for m in methods]
        known = (cond in params or cond in workload.options
                 or any(cond in info.hyperparameters for info in infos))
        if not known:
            w.fail(cond, f"unknown parameter {cond!r}",
                   "method, " + ", ".join(sorted(set(params) | set(workload.options))))
        possible: list[Callable[[Any], bool]] = []
        if cond in params:
            possible.append(params[cond].contains)
        for info in infos:
            if cond in info.search_space:
                possible.append(_param_from_default(info.name, cond, info.search_space[cond]).contains)
            elif cond in info.hyperparameters:
                default = _method_defaults(info, workload).get(cond)
                possible.append(lambda v, d=default: _same(v, d))
        if cond in workload.options:
            possible.append(lambda v, d=workload.options[cond]: _same(v, d))
        for v in values:
            if not any(check(v) for check in possible):
                w.fail(cond, f"{cond} can never be {v!r}", f"values {cond} can take in this spec")


# --- per-method spaces ----------------------------------------------------------------------------
def _param_from_default(method: str, name: str, spec: Mapping[str, Any]) -> Param:
    """A method's default space entry (same vocabulary) as a Param."""
    if "value" in spec:
        return Param(name, "fixed", value=spec["value"], origin="method default")
    if spec.get("type", "categorical") == "categorical":
        return Param(name, "categorical", values=tuple(spec["values"]), origin="method default")
    return Param(name, spec["type"], low=spec["low"], high=spec["high"], log=bool(spec.get("log", False)),
                 step=spec.get("step"), origin="method default")


def _base_only() -> Mapping[str, frozenset[str]]:
    """Names that only one base optimizer takes (momentum for sgd, betas for adamw)."""
    from methods import BASE_ONLY

    return BASE_ONLY


def _method_defaults(info: Any, workload: Workload) -> dict[str, Any]:
    """What each name is when the trial does not sample it: the preset's defaults, then the table's."""
    from methods import HPARAMS

    out = {name: HPARAMS[name].default for name in info.hyperparameters if name in HPARAMS}
    out.update(info.defaults)
    out["base"] = info.defaults.get("base", info.default_base)
    for k, v in workload.options.items():
        out.setdefault(k, v)
    return out


def _resolve_space(top: _Block, methods: tuple[str, ...], params: Mapping[str, Param], workload: Workload,
                   trial_grad_evals: int) -> tuple[dict[str, dict[str, Param]], dict[str, dict[str, Any]]]:
    """Each method's space: its defaults, overridden by `parameters`, minus what it does not take."""
    from methods import get_method

    space: dict[str, dict[str, Param]] = {}
    defaults: dict[str, dict[str, Any]] = {}
    for m in methods:
        info = get_method(m)
        own: dict[str, Param] = {k: _param_from_default(m, k, v) for k, v in info.search_space.items()}
        for name, p in params.items():
            if "method" in p.when and m not in p.when["method"]:
                continue
            if name in info.hyperparameters or name in workload.options:
                own[name] = p
        own = _apply_base(own, info)
        defaults[m] = _method_defaults(info, workload)
        space[m] = _sampling_order(top, own)
        _probe(top, info, space[m], workload, trial_grad_evals)
    for name, p in params.items():
        if not any(name in s for s in space.values()):
            accepted = sorted({h for m in methods for h in get_method(m).hyperparameters} | set(workload.options))
            scope = p.when.get("method", methods)
            top.fail_at(p.path, p.line, f"no selected method takes {name!r} (methods: {', '.join(scope)}) "
                        f"and workload {workload.name} has no such option", ", ".join(accepted))
    return space, defaults


def _apply_base(own: dict[str, Param], info: Any) -> dict[str, Param]:
    """Drop names of the base a method does not use; make them conditional when `base` is searched."""
    base = own.get("base")
    bases = tuple(base.candidates() or ()) if base else (info.defaults.get("base", info.default_base),)
    out: dict[str, Param] = {}
    for name, p in own.items():
        owners = {b for b, names in _base_only().items() if name in names}
        if not owners:
            out[name] = p
            continue
        usable = tuple(b for b in bases if b in owners)
        if not usable:
            continue
        if len(usable) < len(bases):
            limit = tuple(b for b in p.when.get("base", usable) if b in usable)
            p = replace(p, when={**p.when, "base": limit})
        out[name] = p
    return out


def _sampling_order(top: _Block, own: Mapping[str, Param]) -> dict[str, Param]:
    """Order parameters so that each comes after the ones its `when:` reads (define-by-run needs it)."""
    ordered: dict[str, Param] = {}
    pending = dict(own)
    while pending:
        ready = [n for n, p in pending.items() if all(c not in pending for c in p.when if c != "method")]
        if not ready:
            name, p = next(iter(pending.items()))
            top.fail_at(p.path, p.line, "`when:` conditions form a cycle: " + ", ".join(pending))
        for n in ready:
            ordered[n] = pending.pop(n)
    return ordered


def _probe(top: _Block, info: Any, own: Mapping[str, Param], workload: Workload, trial_grad_evals: int) -> None:
    """Try each parameter's extreme values and choices on the method (and workload) now, not mid-run.

    Resolved along the trial's own path (`tuner.hparams.optimizer_hparams`, horizon included); the
    preflight then builds and steps the real optimizer on the real workload.
    """
    from methods import ConfigError
    from tuner.hparams import optimizer_hparams
    from tuner.workloads import resolve_options

    base = own.get("base")
    bases = tuple(base.candidates() or ()) if base else (info.defaults.get("base", info.default_base),)
    def where(p: Param) -> tuple[str, int | None]:
        return (p.path, p.line) if p.origin == "spec" else ("methods", top.line_of("methods"))

    def attempt(trial: dict[str, Any], p: Param, v: Any) -> None:
        try:
            optimizer_hparams(info.name, trial, trial_grad_evals)
        except ConfigError as exc:
            top.fail_at(*where(p), f"{v!r} does not work for method {info.name}: {exc}")

    for b in bases:
        fixed_params = {k: p for k, p in own.items()
                        if p.type == "fixed" and k in info.hyperparameters and _allowed_for_base(p, b)
                        and not set(p.when) - {"method", "base"}}
        fixed = {k: p.value for k, p in fixed_params.items()}
        attempt({**fixed, "base": b}, base or Param("base", "fixed", origin="method default"), b)
        for name, p in own.items():
            if not _allowed_for_base(p, b) or name == "base":
                continue
            for v in p.probes():
                if name in info.hyperparameters:
                    attempt({**fixed, "base": b, name: v}, p, v)
                else:
                    try:
                        resolve_options(workload.name, {**workload.options, name: v})
                    except UserError as exc:
                        top.fail_at(*where(p), f"{v!r} does not work for workload {workload.name}: {exc}")


def _allowed_for_base(p: Param, base: str) -> bool:
    if "base" in p.when and base not in p.when["base"]:
        return False
    if p.name == "base":
        return True
    owners = {b for b, names in _base_only().items() if p.name in names}
    return not owners or base in owners


# --- budget, scheduler, tracking, confirm -----------------------------------------------------------
def _parse_budget(b: _Block, sampler: Sampler, methods: tuple[str, ...],
                  space: Mapping[str, Mapping[str, Param]], defaults: Mapping[str, Mapping[str, Any]]) -> Budget:
    trial_grad_evals = b.take("trial_grad_evals", _int(1, 10**12))
    eval_every = b.take("eval_every", _int(1, 10**12), min(20, trial_grad_evals))
    if eval_every > trial_grad_evals:
        b.fail("eval_every", f"{eval_every} steps is more than the whole trial ({trial_grad_evals} grad evals)",
               f"1..{trial_grad_evals}")
    if sampler.name == "grid":
        for m, params in space.items():
            for p in params.values():
                if p.candidates() is None:
                    where = p.path if p.origin == "spec" else f"parameters.{p.name} (default of method {m})"
                    b.fail_at(where, p.line or b.line_of("num_samples"),
                              "the grid sampler needs a finite list of values, got a float range without step",
                              f"{p.name}: {{values: [...]}}, {{value: ...}} or a float range with step")
        from tuner.space import count_grid_points

        points = count_grid_points(methods, space, defaults)
        if points > MAX_GRID_POINTS:
            b.fail_at("parameters", None, f"the grid has {points} points", f"at most {MAX_GRID_POINTS}")
        num_samples = b.take("num_samples", _int(1, 10**7), points)
        if num_samples != points:
            b.fail("num_samples", f"the grid has {points} points but num_samples is {num_samples}",
                   f"{points} or leave it out")
    else:
        num_samples = b.take("num_samples", _int(1, 10**7))
    return Budget(
        num_samples=num_samples,
        max_concurrent_trials=b.take("max_concurrent_trials", _int(1, 10_000), 1),
        time_s=b.take("time", _duration, None),
        trial_grad_evals=trial_grad_evals,
        eval_every=eval_every,
    )


def _parse_scheduler(b: _Block, budget: Budget) -> Scheduler:
    name = b.take("name", _choice(SCHEDULERS), "asha")
    takes = SCHEDULERS[name]
    for key in b.data:
        if key != "name" and key not in takes:
            b.fail(key, f"not used by scheduler {name}", ", ".join(("name", *takes)) if takes else "name")
    if name == "fifo":
        return Scheduler(name)
    time_attr = b.take("time_attr", _choice(TIME_ATTRS), "cost/grad_evals")
    max_t = None
    if "max_t" in takes:
        default = budget.trial_grad_evals if TIME_ATTRS[time_attr] else _REQUIRED
        max_t = b.take("max_t", _int(1, 10**12), default)
    grace = None
    if "grace_period" in takes:
        horizon = max_t or budget.trial_grad_evals
        grace = b.take("grace_period", _int(1, 10**12), max(1, horizon // 9))
        if max_t is not None and grace > max_t:
            b.fail("grace_period", f"{grace} is more than max_t {max_t}", f"1..{max_t}")
    factor = b.take("reduction_factor", _number(1, 100, low_open=True), 3) if "reduction_factor" in takes else None
    return Scheduler(name, time_attr, grace, factor, max_t)


def _tracking_uri(spec_dir: Path) -> Callable[..., str]:
    note = "null (sqlite next to the results), sqlite:///PATH.db, http(s)://HOST:PORT, file:///DIR"

    def check(b: _Block, key: str, value: Any) -> str:
        uri = _string()(b, key, value)
        scheme, sep, rest = uri.partition("://")
        if not sep and uri.startswith("sqlite:"):
            scheme, rest = "sqlite", uri[len("sqlite:"):]
        if scheme not in TRACKING_SCHEMES:
            b.fail(key, f"unknown scheme in {uri!r}", note)
        if re.match(r"[^/@]*:[^/@]*@", rest):
            b.fail(key, "credentials in the URI would be logged",
                   "a URI without user:password; set MLFLOW_TRACKING_USERNAME / _PASSWORD instead")
        if scheme in ("sqlite", "file"):
            local = rest[1:] if scheme == "sqlite" and rest.startswith("/") else rest
            if not local or local == "/":
                b.fail(key, f"no path in {uri!r}", note)
            target = Path(local) if Path(local).is_absolute() else (spec_dir / local).resolve()
            if scheme == "sqlite" and target.is_dir():
                b.fail(key, f"{target} is a directory", "a database file path such as sqlite:///results/mlflow.db")
            return f"{scheme}:///{target}" if scheme == "sqlite" else f"file://{target}"
        return uri
    return check


def _parse_confirm(top: _Block, workload: Workload) -> Confirm:
    from tuner.workloads import resolve_options

    b = top.block("confirm", ("top_k", "seeds", "label_noise"))
    confirm = Confirm(top_k=b.take("top_k", _int(1, 1000), 1),
                      seeds=b.take("seeds", _list_of(_int(0, 2**32 - 1)), (0, 1, 2)),
                      label_noise=b.take("label_noise", _list_of(_number(0.0, 1.0), non_empty=False), ()))
    for noise in confirm.label_noise:
        try:
            resolve_options(workload.name, {**workload.options, "label_noise": noise})
        except UserError as exc:
            b.fail("label_noise", f"workload {workload.name} rejects label_noise {noise!r}: {exc}")
    return confirm
