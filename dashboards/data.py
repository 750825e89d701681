"""Everything the report needs, read once from the store: trials, robust winners, winners' histories.

The winners and the per-method table are `tuner.results.winners.winners`, the computation `run` prints
and tags; this module only gathers them with the curves the figures draw.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from tuner.results.feasible import stored_constraints
from tuner.results.robust import RobustResult
from tuner.results.store import ExperimentStore
from tuner.results.stress import stress_condition, winner_runs
from tuner.results.winners import winners

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
    data = ReportData(store.name, metric, goal, trials, robust, table, stress, constraints=stored_constraints(store))
    keys = [metric] + [k for k in DIAG_KEYS if k in trials.columns]
    for method in data.methods:
        runs = winner_runs(trials, robust, method, stress)
        data.histories[method] = {k: [store.metric_history(r, k) for r in runs["run_id"]] for k in keys}
    return data
