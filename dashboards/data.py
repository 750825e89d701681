"""Everything the report needs, read once from the store: trials, robust winners, winners' histories.

The winners and the per-method table are `tuner.results.winners.winners`, the computation `run` prints
and tags; this module only gathers them with the curves the figures draw.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import yaml

from dashboards.colors import MethodStyle, method_styles
from tuner.layout import RESOLVED_FILE
from tuner.results.feasible import stored_constraints
from tuner.results.robust import RobustResult
from tuner.results.stress import stress_condition, winner_runs
from tuner.results.winners import winners
from tuner.tracking.reader import ExperimentStore

DIAG_KEYS = ("diag/balancedness_mean", "diag/balancedness_max", "diag/lambda_max", "diag/sam_edge",
             "diag/lambda_over_edge", "diag/hessian_trace")


@dataclass
class ReportData:
    """Inputs of every plot and table; `histories[method][key]` holds the winner's curves (one per run)."""

    name: str
    metric: str
    goal: str
    trials: pd.DataFrame
    robust: RobustResult
    table: pd.DataFrame
    stress: str | None  # the condition varied in the confirmation runs (label_noise, snr, ...)
    constraints: tuple = ()  # the spec's constraints (tuner.spec.Constraint); trials then carry `feasible`
    histories: dict[str, dict[str, list[pd.DataFrame]]] = field(default_factory=dict)
    space: dict[str, dict[str, Any]] = field(default_factory=dict)  # method -> its stored search space
    spec_methods: tuple[str, ...] = ()  # the spec's method order: it decides who gets which colour
    max_concurrent: int | None = None  # the spec's budget.max_concurrent_trials (trials sharing the machine)

    @property
    def styles(self) -> dict[str, MethodStyle]:
        """One distinct look per method, the same in every figure (`dashboards.colors.method_styles`)."""
        seen = list(self.trials["method"].dropna().unique()) if "method" in self.trials else []
        return method_styles([*self.spec_methods, *self.methods, *sorted(seen)])

    def style(self, method: str) -> MethodStyle:
        return self.styles[method]

    @property
    def methods(self) -> list[str]:
        return list(self.table["method"]) if len(self.table) else []

    @property
    def search(self) -> pd.DataFrame:
        return self.trials[self.trials["phase"] == "search"]


def collect(store: ExperimentStore, metric: str | None = None, goal: str | None = None) -> ReportData:
    """Read the experiment once: its winners and per-method table (`tuner.results.winners.winners`) and curves."""
    table, robust, trials = winners(store, metric, goal)
    metric, goal = robust.metric, robust.goal
    stress = stress_condition(trials)
    spec = store.spec()
    budget = spec.get("budget") if isinstance(spec.get("budget"), Mapping) else {}
    data = ReportData(store.name, metric, goal, trials, robust, table, stress, constraints=stored_constraints(store),
                      space=stored_space(store, spec), spec_methods=tuple(map(str, spec.get("methods") or ())),
                      max_concurrent=budget.get("max_concurrent_trials"))
    keys = [metric] + [k for k in DIAG_KEYS if k in trials.columns]
    for method in data.methods:
        runs = winner_runs(trials, robust, method, stress)
        data.histories[method] = {k: [store.metric_history(r, k) for r in runs["run_id"]] for k in keys}
    return data


def stored_space(store: ExperimentStore, spec: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Each method's search space as the runner stored it: the parent run's spec.yaml, else resolved_spec.yaml
    in the experiment's folder; {} when neither has one (the figures then say the scale is unknown)."""
    space = spec.get("space")
    if not isinstance(space, Mapping):
        try:
            resolved = yaml.safe_load((store.results_dir / RESOLVED_FILE).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError):
            resolved = None
        space = resolved.get("space") if isinstance(resolved, Mapping) else None
    if not isinstance(space, Mapping):
        return {}
    return {str(m): dict(s) for m, s in space.items() if isinstance(s, Mapping)}
