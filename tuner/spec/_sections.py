"""Readers of the spec's sections: metric, workload, methods, parameters, budget, scheduler, tracking, confirm."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from methods import list_methods, unavailable_reason
from tuner.errors import UserError
from tuner.names import CURVE_POINTS, DIAG_POINTS, GRAD_EVALS, METRIC_PREFIXES
from tuner.space import MAX_GRID_POINTS, Param, count_grid_points
from tuner.spec._reader import (
    _REQUIRED,
    _Block,
    _boolean,
    _choice,
    _duration,
    _int,
    _kind,
    _list_of,
    _Map,
    _number,
    _scalar,
    _string,
    did_you_mean,
)
from tuner.spec._resolve import _check_when
from tuner.spec.model import (
    MAX_POINTS,
    PARAM_TYPES,
    SCHEDULERS,
    SPLITS,
    TIME_ATTRS,
    TRACKING_SCHEMES,
    Budget,
    Confirm,
    Objective,
    Sampler,
    Scheduler,
    SpecError,
    Workload,
)
from tuner.value_rules import GOALS
from tuner.workloads import absolute_target, is_target, list_workloads, load_target, resolve_options


def _objective(b: _Block, key: str, value: Any) -> Objective:
    return _read_objective(b, key, value, ("name", "goal"))


def _metric(b: _Block, key: str, value: Any) -> Objective:
    """`metric`: an objective plus an optional `target`, the value each method's cost is measured to."""
    return _read_objective(b, key, value, ("name", "goal", "target"))


def _read_objective(b: _Block, key: str, value: Any, keys: tuple[str, ...]) -> Objective:
    inner = _Block(b.file, value, b.sub(key), b.line_of(key), keys)
    name = inner.take("name", _string())
    if not name.startswith(METRIC_PREFIXES):
        inner.fail("name", f"unknown metric {name!r}", "names starting with " + ", ".join(METRIC_PREFIXES)
                   + ", e.g. eval/accuracy, eval/loss, train/loss, cost/step_time_ms")
    goal = inner.take("goal", _choice(GOALS))
    target = inner.take("target", _number(-math.inf, math.inf), None) if "target" in keys else None
    return Objective(name, goal, None if target is None else float(target))


def _method_name(b: _Block, key: str, value: Any) -> str:

    names = [m.name for m in list_methods()]
    if value not in names:
        b.fail(key, unavailable_reason(value) or f"unknown method {value!r}{did_you_mean(value, names)}",
               ", ".join(names))
    return value


def _workload_names() -> list[str]:

    return [w if isinstance(w, str) else w.name for w in list_workloads()]


def _parse_workload(b: _Block) -> Workload:

    raw = b.data.get("name")
    if isinstance(raw, str) and is_target(raw):  # a user's class: file path relative to the spec's folder
        try:
            spec_dir = Path(b.file).resolve().parent
            name = absolute_target(raw, spec_dir)
            load_target(name, str(spec_dir))  # imports it now: a broken file fails here, not in a trial
        except UserError as exc:
            raise SpecError(b.file, b.line_of("name"), "", str(exc)) from None
    else:
        name = b.take("name", _choice(_workload_names()))
    options = b.take("options", lambda blk, k, v: v, {})
    if not isinstance(options, dict):
        b.fail("options", f"must be a mapping, got {_kind(options)}")
    try:
        resolved = resolve_options(name, dict(options), base=Path(b.file).resolve().parent)
    except UserError as exc:
        bad = getattr(exc, "option", None)
        where = b.sub("options") + (f".{bad}" if bad is not None else "")
        line = options.key_lines.get(bad) if bad is not None and isinstance(options, _Map) else None
        raise SpecError(b.file, line or b.line_of("options"), where, str(exc)) from None
    return Workload(name, dict(resolved), b.take("compile", _boolean, False))


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
        if not math.isfinite(count) or count > MAX_STEPS:
            b.fail("step", f"(high - low) / step = {count:g} values: too many to enumerate",
                   f"a step of at least (high - low) / {MAX_STEPS:g}")
        if abs(count - round(count)) > 1e-9 * max(1.0, abs(count)):
            b.fail("step", f"high - low = {high - low:g} is not a multiple of step {step:g}",
                   "a step that divides high - low")
    return Param(name, kind, low=low, high=high, log=log, step=None if (kind == "int" and step == 1) else step,
                 when=when, line=line, origin=origin)



MAX_STEPS = 1e12  # a float step finer than this many values per range is a typo, not a grid


def _parse_when(b: _Block) -> dict[str, tuple[Any, ...]]:
    inner = b.data["when"]
    if not isinstance(inner, dict) or not inner:
        b.fail("when", f"must be a non-empty mapping {{param: [values]}}, got {_kind(inner)}",
               "{method: [sam, asam]} or {param: [values]}")
    w = _Block(b.file, inner, b.sub("when"), b.line_of("when"), [k for k in inner if isinstance(k, str)])
    return {k: w.take(k, _list_of(_scalar)) for k in inner}



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
                if p.count() == math.inf:
                    where = p.path if p.origin == "spec" else f"parameters.{p.name} (default of method {m})"
                    b.fail_at(where, p.line or b.line_of("num_samples"),
                              "the grid sampler needs a finite list of values, got a float range without step",
                              f"{p.name}: {{values: [...]}}, {{value: ...}} or a float range with step")

        points = count_grid_points(methods, space, defaults)
        if points > MAX_GRID_POINTS:
            b.fail_at("parameters", None, f"the grid has more than {MAX_GRID_POINTS} points",
                      f"at most {MAX_GRID_POINTS}")
        num_samples = b.take("num_samples", _int(1, 10**7), points)
        if num_samples != points:
            b.fail("num_samples", f"the grid has {points} points but num_samples is {num_samples}",
                   f"{points} or leave it out")
    else:
        num_samples = b.take("num_samples", _int(1, 10**7))
    split = b.take("split", _choice(SPLITS), "per_method" if len(methods) > 1 else "shared")
    if split == "per_method" and num_samples < len(methods):
        b.fail("num_samples", f"{num_samples} trials cannot give each of the {len(methods)} methods one "
               "(budget.split: per_method)", f"at least {len(methods)}, or budget.split: shared")
    return Budget(
        num_samples=num_samples,
        max_concurrent_trials=b.take("max_concurrent_trials", _int(1, 10_000), 1),
        time_s=b.take("time", _duration, None),
        trial_grad_evals=trial_grad_evals,
        eval_every=eval_every,
        curve_points=b.take("curve_points", _int(1, MAX_POINTS), CURVE_POINTS),
        diag_points=b.take("diag_points", _int(1, MAX_POINTS), DIAG_POINTS),
        stall_timeout_s=b.take("stall_timeout", _duration, None),
        split=split,
    )


def _parse_scheduler(b: _Block, budget: Budget) -> Scheduler:
    name = b.take("name", _choice(SCHEDULERS), "asha")
    takes = SCHEDULERS[name]
    for key in b.data:
        if key != "name" and key not in takes:
            b.fail(key, f"not used by scheduler {name}", ", ".join(("name", *takes)) if takes else "name")
    if name == "fifo":
        return Scheduler(name)
    time_attr = b.take("time_attr", _choice(TIME_ATTRS), GRAD_EVALS)
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
    """`confirm: {top_k, seeds, stress: {option: [levels]}}`; `label_noise: [...]` is `stress.label_noise`."""
    b = top.block("confirm", ("top_k", "seeds", "stress", "label_noise"))
    top_k = b.take("top_k", _int(1, 1000), 1)
    seeds = b.take("seeds", _list_of(_int(0, 2**32 - 1)), (0, 1, 2))
    raw: dict[str, Any] = {}
    if b.has("stress"):
        inner = b.data["stress"]
        if not isinstance(inner, dict):
            b.fail("stress", f"must be a mapping {{workload option: [levels]}}, got {_kind(inner)}")
        s = _Block(b.file, inner, b.sub("stress"), b.line_of("stress"), [k for k in inner if isinstance(k, str)])
        for name in inner:
            if name not in workload.options:
                s.fail(name, f"workload {workload.name} has no option {name!r}",
                       ", ".join(workload.options) or "none: this workload takes no options")
            raw[name] = (s, s.take(name, _list_of(_scalar)))
    if b.has("label_noise"):
        if "label_noise" in raw:
            b.fail("label_noise", "given twice (here and in stress)", "stress: {label_noise: [...]} alone")
        levels = b.take("label_noise", _list_of(_number(0.0, 1.0), non_empty=False), ())
        if levels:
            raw["label_noise"] = (b, levels)
    stress: dict[str, tuple[Any, ...]] = {}
    for name, (holder, levels) in raw.items():
        typed = []
        for level in levels:
            try:
                typed.append(resolve_options(workload.name, {**workload.options, name: level})[name])
            except UserError as exc:
                holder.fail(name, f"workload {workload.name} rejects {name} {level!r}: {exc}")
        stress[name] = tuple(typed)
    return Confirm(top_k=top_k, seeds=seeds, stress=stress)
