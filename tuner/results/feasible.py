"""Which trials meet the spec's `constraints`: one rule for the searcher (Optuna) and the report.

A constraint bounds a logged metric (`cost/peak_mem_mb`) or `overhead`, the gradient evaluations a
trial pays per optimizer step (counted by the trial: `cost/grad_evals / step`; in the results, where
`step` is not logged, the method's declared cost for the trial's hyperparameters, which the
conformance suite holds equal to the counted one). A missing value violates its constraint.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from methods import ConfigError, get_method
from tuner.hparams import method_hparams
from tuner.names import GRAD_EVALS
from tuner.spec.model import Constraint
from tuner.tracking.reader import ExperimentStore, parse_param
from tuner.value_rules import is_number


def derived_metric(name: str, result: Mapping[str, Any], method: str | None = None,
                   hparams: Mapping[str, Any] | None = None) -> Any:
    """A metric's value in a result; `overhead` is computed (see module docstring)."""
    if name != "overhead":
        return result.get(name)
    evals, steps = result.get(GRAD_EVALS), result.get("step")
    if is_number(evals) and is_number(steps) and steps > 0:
        return evals / steps
    if method is None:
        return None
    try:
        info = get_method(method)
        return info.grad_evals_per_step(**method_hparams(method, hparams or {}))
    except ConfigError:
        return None


def constraint_values(constraints: Sequence[Constraint], result: Mapping[str, Any], method: str | None = None,
                      hparams: Mapping[str, Any] | None = None) -> list[float]:
    """Violation per constraint (<= 0: within, Optuna's convention); a missing value violates (inf)."""
    out = []
    for c in constraints:
        value = derived_metric(c.metric, result, method, hparams)
        out.append(c.violation(float(value)) if is_number(value) else math.inf)
    return out


def constraints_from(spec: Mapping[str, Any]) -> tuple[Constraint, ...]:
    """The constraints of a resolved spec as stored with the experiment (`Spec.to_dict`)."""
    return tuple(Constraint(c["metric"], c.get("min"), c.get("max")) for c in spec.get("constraints") or ())


def stored_constraints(store: ExperimentStore) -> tuple[Constraint, ...]:
    """The experiment's constraints from its parent run's `constraints` param (no artifact download)."""
    parent = store.parent()
    value = parse_param(parent.get("params.constraints")) if parent is not None else None
    return constraints_from({"constraints": value}) if isinstance(value, list) else ()


def _describe(c: Constraint, value: Any) -> str:
    shown = f"{value:.4g}" if is_number(value) else "missing"
    bound = f"<= {c.max:g}" if c.max is not None and (not is_number(value) or value > c.max) else f">= {c.min:g}"
    return f"{c.metric} {shown} (needs {bound})"


def mark_feasible(trials: pd.DataFrame, constraints: Sequence[Constraint]) -> pd.DataFrame:
    """`trials` with `feasible` (bool) and `violated` (what broke, '' if nothing) per run."""
    out = trials.copy()
    feasible, violated = [], []
    for _, row in out.iterrows():
        result = row.to_dict()
        values = constraint_values(constraints, result, row.get("method"), row.get("hparams"))
        broken = [_describe(c, derived_metric(c.metric, result, row.get("method"), row.get("hparams")))
                  for c, v in zip(constraints, values, strict=True) if v > 0]
        feasible.append(not broken)
        violated.append("; ".join(broken))
    out["feasible"] = pd.Series(feasible, index=out.index, dtype=bool)
    out["violated"] = pd.Series(violated, index=out.index, dtype=object)
    return out
