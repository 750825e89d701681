"""Preflight: before Ray starts, every branch of every method's space takes one real step.

A search can hold a cluster for hours, so anything that would make a trial fail must fail here, in
seconds, on one line. The spec check already resolves each value alone; the preflight goes further,
on the spec's real workload (built once) and along the trial's own path (`tuner.hparams`):

- points: each method's space reduced to a few configs that together take every categorical value
  and every `when:` branch at least once, and every numeric range at both of its ends;
- each point builds the optimizer with the trial's hyperparameters (horizon included) and takes one
  step on a real batch, from the same initial weights (the workload's state is restored in between);
  what a trial would only start later (IRE after its warm-up) starts at once (`DELAYED`).

Workload options that the space searches are checked by `resolve_options` only: the workload is
built once, with the spec's own options. A non-finite loss after one step at a range's end is not a
failure (the trial would report it as diverged); an exception is.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from tuner.errors import UserError
from tuner.hparams import is_hyperparameter, split_values
from tuner.space import Param, is_active
from tuner.spec import Spec, trial_setup
from tuner.trial.build import build_method, build_workload
from tuner.trial.setup import TrialSetup
from tuner.workloads import Workload, resolve_options

MAX_BRANCHES = 20_000  # categorical combinations enumerated per method before covering them
# Hyperparameters that delay part of a step (IRE's curvature estimate starts after `warmup` steps, a
# third of the horizon by default): set to 0 in the preflight, so its one step runs every part.
DELAYED = ("warmup",)


class PreflightError(UserError):
    """One config of the spec cannot take a step: `FILE: preflight: method M with {...}: problem`."""


@dataclass(frozen=True)
class PreflightReport:
    """What the preflight tried: configs per method and the seconds it took (workload build included)."""

    configs: Mapping[str, int]
    seconds: float
    build_seconds: float

    def line(self, workload: str) -> str:
        total = sum(self.configs.values())
        return (f"preflight: {total} configs of {len(self.configs)} method(s) took one step each on {workload} "
                f"in {self.seconds:.1f}s (workload built in {self.build_seconds:.1f}s)")


def _numeric(p: Param) -> bool:
    return p.type in ("float", "int")


def _branches(method: str, own: Mapping[str, Param], defaults: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every combination of the categorical values that `when:` lets through; numerics at their low end."""
    points: list[dict[str, Any]] = [{}]
    for name, p in own.items():
        grown: list[dict[str, Any]] = []
        for point in points:
            if not is_active(p, method, point, own, defaults):
                grown.append(point)
            elif _numeric(p):
                grown.append({**point, name: p.low if p.type == "float" else int(p.low)})
            else:
                grown.extend({**point, name: v} for v in (p.candidates() or ()))
        points = grown[:MAX_BRANCHES]
    return points


def _elements(point: Mapping[str, Any], own: Mapping[str, Param]) -> set[tuple[str, str]]:
    """What a point covers: each categorical (name, value) and its set of active names (a `when:` branch)."""
    out = {(name, repr(v)) for name, v in point.items() if not _numeric(own[name])}
    out.add(("active", ",".join(sorted(point))))
    return out


def _cover(points: list[dict[str, Any]], own: Mapping[str, Param]) -> list[dict[str, Any]]:
    """A small subset of `points` covering every element any of them covers (greedy set cover)."""
    left = set().union(*(_elements(p, own) for p in points))
    chosen: list[dict[str, Any]] = []
    while left:
        best = max(points, key=lambda p: len(_elements(p, own) & left))
        chosen.append(best)
        left -= _elements(best, own)
    return chosen


def _ends(points: list[dict[str, Any]], own: Mapping[str, Param]) -> list[dict[str, Any]]:
    """Alternate numeric values between range ends; add a point where one end would go untried."""
    out = [dict(p) for p in points]
    for name, p in own.items():
        if not _numeric(p):
            continue
        high = p.high if p.type == "float" else int(p.high)
        holders = [q for q in out if name in q]
        for i, q in enumerate(holders):
            if i % 2:
                q[name] = high
        if len(holders) == 1 and p.high != p.low:
            out.append({**holders[0], name: high})
    return out


def preflight_points(spec: Spec, method: str) -> list[dict[str, Any]]:
    """The configs the preflight steps for `method`: public trial values (`{"method": m, ...}`)."""
    own = spec.space[method]
    points = _ends(_cover(_branches(method, own, spec.defaults[method]), own), own)
    return [{"method": method, **p} for p in points]


def _describe(point: Mapping[str, Any]) -> str:
    return "{" + ", ".join(f"{k}: {v!r}" for k, v in point.items() if k != "method") + "}"


def run_preflight(spec: Spec, *, say: Callable[[str], None] = print) -> PreflightReport:
    """Build the workload once and step every preflight point; PreflightError (exit 2) on the first failure.

    The trial's own builders (`tuner.trial.build`) on the trial's own `TrialSetup`: the workload is built
    once, on the driver's CPU, with the spec's options; each point gets its optimizer from `build_method`.
    """
    started = time.perf_counter()
    setup = replace(trial_setup(spec), compile=False)  # the eager model: compiling is the trial's (on its device)
    # before Ray starts the driver has the machine: the step uses torch's default thread count
    workload = build_workload(setup, {"method": spec.methods[0]}, device="cpu", threads=None)
    built = time.perf_counter() - started
    initial = workload.state_dict()
    configs: dict[str, int] = {}
    for method in spec.methods:
        points = preflight_points(spec, method)
        configs[method] = len(points)
        for point in points:
            _step(spec, setup, workload, initial, point)
    return PreflightReport(configs, time.perf_counter() - started, built)


def _step(spec: Spec, setup: TrialSetup, workload: Workload, initial: Mapping[str, Any],
          point: Mapping[str, Any]) -> None:
    """One optimizer step of `point` from the initial weights; PreflightError names what failed."""
    method = point["method"]
    try:
        _, _, overrides = split_values(point)
        if overrides:
            resolve_options(spec.workload.name, {**spec.workload.options, **overrides})
        # the delayed parts run in this one step
        delayed = {k: 0 for k in DELAYED if is_hyperparameter(method, k)}
        workload.load_state_dict(initial)
        optimizer = build_method(setup, workload, {**point, **delayed})
        optimizer.step(workload.closure(workload.next_batch()))  # the optimizer autocasts its passes
    except UserError as exc:
        raise PreflightError(f"{spec.path}: preflight: method {method} with {_describe(point)}: {exc}") from None
    except Exception as exc:  # any failure of a real step is the spec's combination failing
        first = (str(exc).strip().splitlines() or [""])[0]
        raise PreflightError(f"{spec.path}: preflight: method {method} with {_describe(point)}: "
                             f"{type(exc).__name__}: {first}") from None
