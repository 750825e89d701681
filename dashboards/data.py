"""Everything the report needs, read once from the store: trials, robust winners, winners' histories."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from tuner.results.feasible import mark_feasible, stored_constraints
from tuner.results.method_table import method_table
from tuner.results.robust import RobustResult, robust_winners
from tuner.results.store import ExperimentStore

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


def stress_condition(trials: pd.DataFrame) -> str | None:
    """The confirmation condition with more than one level; label_noise first, then snr, then any."""
    confirm = trials[trials["phase"] == "confirm"]
    levels: dict[str, set] = {}
    for cond in confirm["conditions"]:
        for k, v in cond.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                levels.setdefault(k, set()).add(v)
    varied = [k for k, v in levels.items() if len(v) > 1]
    for preferred in ("label_noise", "snr"):
        if preferred in varied:
            return preferred
    return sorted(varied)[0] if varied else None


def winner_runs(data_trials: pd.DataFrame, robust: RobustResult, method: str, stress: str | None) -> pd.DataFrame:
    """The winner's runs; at the mildest stress level when the confirmation varied one."""
    row = robust.methods[robust.methods["method"] == method]
    if not len(row) or not row.iloc[0]["run_ids"]:
        return data_trials.iloc[0:0]
    runs = data_trials[data_trials["run_id"].isin(row.iloc[0]["run_ids"])]
    if stress and len(runs):
        levels = runs["conditions"].map(lambda c: c.get(stress, math.nan))
        runs = runs[levels == levels.min()]
    return runs


def collect(store: ExperimentStore, metric: str | None = None, goal: str | None = None) -> ReportData:
    """Read the experiment once and compute the robust winners and the per-method table."""
    metric, goal = store.objective(metric, goal)
    trials = store.trials()
    constraints = stored_constraints(store)
    if constraints:
        trials = mark_feasible(trials, constraints)
    robust = robust_winners(trials, metric, goal)
    table = method_table(trials, robust)
    stress = stress_condition(trials)
    data = ReportData(store.name, metric, goal, trials, robust, table, stress, constraints=constraints)
    keys = [metric] + [k for k in DIAG_KEYS if k in trials.columns]
    for method in data.methods:
        runs = winner_runs(trials, robust, method, stress)
        data.histories[method] = {k: [store.metric_history(r, k) for r in runs["run_id"]] for k in keys}
    return data
