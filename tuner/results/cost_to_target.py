"""What each method pays to reach a target: gradient evaluations and wall-clock seconds (AlgoPerf style).

A method's step can cost two gradients (SAM) and still reach a given quality sooner. Step-time overhead
alone calls it twice as expensive; the cost to a target compares it directly (issue 31):

- the target is the spec's `metric.target`, else the best full-budget value of the baseline (the spec's
  first method): the mean final value of its winner's runs at the plainest condition, the very runs
  its own cost is read from (the table's mean also averages the stress levels: a lower bar);
- a run reaches it at the first report at or past it (`eval/...` history, step = `cost/grad_evals`);
  the wall time is the run's `cost/wall_s` at that report;
- a method is judged by its winning config's runs under the plainest condition (the confirmation's
  seeds at the lowest stress level, else its search run): the median cost over the runs that reach the
  target, and the fraction of runs (seeds) that reach it.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pandas as pd

from tuner.names import WALL_S
from tuner.tracking.reader import ExperimentStore
from tuner.value_rules import goal_sign

COLUMNS = ["method", "target", "target_source", "evals_to_target", "wall_s_to_target", "reached_target",
           "n_target_runs"]


def default_target(trials: pd.DataFrame, table: pd.DataFrame, baseline: str | None, metric: str) -> tuple[float, str]:
    """The baseline's best full-budget value, read where the other methods' costs are read: the mean final
    value of its winner's runs at the plainest condition (`target_runs`). NaN when it has none."""
    rows = table[(table["method"] == baseline)] if baseline else table.iloc[0:0]
    if not len(rows) or not bool(rows["full_budget"].iloc[0]):
        return math.nan, f"none ({baseline or 'no baseline'} has no full-budget result)"
    runs = target_runs(trials, list(rows["run_ids"].iloc[0] or []))
    finals = runs[metric].astype(float) if metric in runs else pd.Series(dtype=float)
    finals = finals[finals.map(math.isfinite)]
    if not len(finals):
        return math.nan, f"none ({baseline} has no finite full-budget value)"
    return float(finals.mean()), f"best full-budget value of {baseline}"


def target_runs(trials: pd.DataFrame, run_ids: list[str]) -> pd.DataFrame:
    """The winner's runs the cost is read from: confirmation runs at the lowest stress level, else search."""
    runs = trials[trials["run_id"].isin(run_ids) & (trials["status"] != "errored")]
    confirm = runs[runs["phase"] == "confirm"]
    if not len(confirm):
        return runs[runs["phase"] == "search"]
    keys = [json.dumps(c or {}, sort_keys=True, default=str) for c in confirm["conditions"]]
    plainest = min(keys, key=lambda k: (sorted(json.loads(k).values(), key=str), k))
    return confirm[[k == plainest for k in keys]]


def first_reach(history: pd.DataFrame, target: float, goal: str) -> float:
    """The first step (grad evals) whose value is at or past the target; NaN if none."""
    sign = goal_sign(goal)
    hit = history[[math.isfinite(v) and sign * v >= sign * target for v in history["value"]]]
    return float(hit["step"].iloc[0]) if len(hit) else math.nan


def _wall_at(store: ExperimentStore, run_id: str, step: float) -> float:
    wall = store.metric_history(run_id, WALL_S)
    at = wall[wall["step"] <= step]
    return float(at["value"].iloc[-1]) if len(at) else math.nan


def cost_to_target(store: ExperimentStore, trials: pd.DataFrame, table: pd.DataFrame, metric: str, goal: str,
                   target: float | None = None, baseline: str | None = None) -> pd.DataFrame:
    """One row per method of `table`: the target, the median grad evals and wall seconds its winner's runs
    took to reach it, and the fraction of those runs that did (`COLUMNS`)."""
    if target is not None:
        value, source = float(target), "metric.target"
    else:
        value, source = default_target(trials, table, baseline, metric)
    rows: list[dict[str, Any]] = []
    for _, row in table.iterrows():
        runs = target_runs(trials, list(row.get("run_ids") or []))
        evals, walls = [], []
        for run_id in runs["run_id"] if math.isfinite(value) else []:
            step = first_reach(store.metric_history(run_id, metric), value, goal)
            if math.isfinite(step):
                evals.append(step)
                walls.append(_wall_at(store, run_id, step))
        finite_walls = [w for w in walls if math.isfinite(w)]
        rows.append({"method": row["method"], "target": value, "target_source": source,
                     "evals_to_target": float(pd.Series(evals).median()) if evals else math.nan,
                     "wall_s_to_target": float(pd.Series(finite_walls).median()) if finite_walls else math.nan,
                     "reached_target": len(evals) / len(runs) if len(runs) and math.isfinite(value) else math.nan,
                     "n_target_runs": len(runs)})
    return pd.DataFrame(rows, columns=COLUMNS)
