"""Readers of the study tools: `enqueue`, `warm_start` and `constraints`.

- `enqueue: [{method: sam, lr: 0.1, rho: 0.05}, ...]` are asked first (Optuna's `enqueue_trial`); a name
  the list leaves out is sampled as usual. `enqueue: paper_defaults` queues, for each method, its
  defaults (`methods`' published configuration) for every name the spec samples, where the spec's
  range holds them.
- `warm_start: {from: EXPERIMENT}` seeds the study with that experiment's finished trials (same
  storage); the space check needs Optuna and runs before anything starts (`tuner.run.initial_trials`).
- `constraints: [{metric: cost/peak_mem_mb, max: 2000}, ...]`: a trial is feasible when every metric
  is within its bound; the sampler is told (Optuna's `constraints_func`), the report ranks the feasible.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from methods import ConfigError
from tuner.hparams import hyperparameter_names, optimizer_hparams
from tuner.layout import JOURNAL_FILE
from tuner.names import METRIC_PREFIXES
from tuner.space import Param
from tuner.spec._reader import _Block, _kind, _list_of, _number, _string
from tuner.spec.model import NAME_PATTERN, Constraint

PAPER_DEFAULTS = "paper_defaults"
DERIVED_METRICS = ("overhead",)  # computed by the report: step time / the base method's step time


def _sampled(space: Mapping[str, Param]) -> dict[str, Param]:
    return {k: p for k, p in space.items() if p.type != "fixed"}


def parse_enqueue(top: _Block, methods: tuple[str, ...], space: Mapping[str, Mapping[str, Param]],
                  sampler: str, trial_grad_evals: int) -> tuple[dict[str, Any], ...]:
    """The configs to ask first, as `{"method": m, name: value, ...}` with the spec's plain names."""
    if not top.has("enqueue"):
        return ()
    if sampler == "grid":
        top.fail("enqueue", "the grid sampler walks every point already", "no enqueue with sampler grid")
    raw = top.data["enqueue"]
    if raw == PAPER_DEFAULTS:
        return tuple(_paper_defaults(m, space[m], trial_grad_evals) for m in methods)
    if not isinstance(raw, list):
        top.fail("enqueue", f"must be a list of configs or {PAPER_DEFAULTS!r}, got {_kind(raw)}")

    def entry(b: _Block, key: str, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict) or "method" not in value:
            b.fail(key, f"must be a mapping with a method, got {_kind(value)}", "{method: sam, rho: 0.05, ...}")
        method = value["method"]
        if method not in methods:
            inner = _Block(b.file, value, b.sub(key), b.line_of(key), list(value))
            inner.fail("method", f"{method!r} is not among the spec's methods", ", ".join(methods))
        own = _sampled(space[method])
        inner = _Block(b.file, value, b.sub(key), b.line_of(key), ("method", *own),
                       f"names {method} samples in this spec")
        config: dict[str, Any] = {"method": method}
        for name, v in value.items():
            if name == "method":
                continue
            if not own[name].contains(v):
                inner.fail(name, f"{v!r} is outside this spec's space for {method}",
                           _describe(own[name]))
            config[name] = v
        hparams = {k: v for k, v in config.items() if k != "method"}
        try:
            optimizer_hparams(method, {k: v for k, v in hparams.items() if k in _takes(method)}, trial_grad_evals)
        except ConfigError as exc:
            b.fail(key, f"does not work for method {method}: {exc}")
        return config

    return _list_of(entry)(top, "enqueue", raw)


def _takes(method: str) -> frozenset[str]:
    return hyperparameter_names(method)


def _describe(p: Param) -> str:
    if p.type == "categorical":
        return ", ".join(map(repr, p.values))
    return f"{p.low:g}..{p.high:g}"


def _paper_defaults(method: str, space: Mapping[str, Param], trial_grad_evals: int) -> dict[str, Any]:
    """The method's resolved defaults for the names the spec samples, where its range holds them."""
    resolved = optimizer_hparams(method, {}, trial_grad_evals)
    out: dict[str, Any] = {"method": method}
    for name, p in _sampled(space).items():
        value = resolved.get(name)
        if value is not None and p.contains(value):
            out[name] = list(value) if isinstance(value, tuple) else value
    return out


def parse_warm_start(top: _Block, storage_path: Path, name: str, sampler: str) -> str | None:
    """The experiment whose finished trials seed this study (its journal must exist)."""
    if not top.has("warm_start"):
        return None
    b = top.block("warm_start", ("from",))
    source = b.take("from", _string(NAME_PATTERN, "an experiment name in the same storage"))
    if sampler == "grid":
        top.fail("warm_start", "the grid sampler walks every point regardless", "no warm_start with sampler grid")
    if source == name:
        b.fail("from", "an experiment cannot warm-start from itself")
    journal = storage_path / source / JOURNAL_FILE
    if not journal.is_file():
        b.fail("from", f"no finished experiment {source!r}: {journal} does not exist",
               "an experiment run before in the same storage")
    return source


def _constraint(b: _Block, key: str, value: Any) -> Constraint:
    inner = _Block(b.file, value, b.sub(key), b.line_of(key), ("metric", "max", "min"),
                   "{metric: cost/peak_mem_mb, max: 2000}")
    metric = inner.take("metric", _string())
    if not metric.startswith(METRIC_PREFIXES) and metric not in DERIVED_METRICS:
        inner.fail("metric", f"unknown metric {metric!r}",
                   "names starting with " + ", ".join(METRIC_PREFIXES) + ", or " + ", ".join(DERIVED_METRICS))
    bound = _number(float("-inf"), float("inf"))
    high = inner.take("max", bound, None)
    low = inner.take("min", bound, None)
    if high is None and low is None:
        inner.fail("metric", "a constraint needs max or min (or both)")
    if high is not None and low is not None and low > high:
        inner.fail("min", f"min {low} is above max {high}")
    return Constraint(metric, None if low is None else float(low), None if high is None else float(high))


CONSTRAINED_SAMPLERS = ("tpe", "nsga2", "gp")  # Optuna samplers that take a constraints_func


def parse_constraints(top: _Block, sampler: str) -> tuple[Constraint, ...]:
    """`constraints: [{metric, max|min}, ...]`: bounds every feasible trial meets."""
    out = top.take("constraints", _list_of(_constraint), ())
    if out and sampler not in CONSTRAINED_SAMPLERS:
        top.fail("constraints", f"sampler {sampler!r} cannot take constraints", ", ".join(CONSTRAINED_SAMPLERS))
    return out
