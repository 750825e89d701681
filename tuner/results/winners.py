"""The winners, and what of them goes where the MLflow UI shows them: parent-run metrics, summary.csv, best-run tags.

`winners` is the one computation of the winners (robust winners, then the per-method table): the
runner prints it and `tag_winners` records it at the end of `run`, so the printed winner is the tagged
one; the report calls `write_summary` with the table it has already computed. The writing itself is
`tuner.tracking.winner_tags`'. No plotting here.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from tuner.results.cost_to_target import COLUMNS as COST_COLUMNS
from tuner.results.cost_to_target import cost_to_target
from tuner.results.feasible import mark_feasible, stored_constraints
from tuner.results.method_table import method_table, summary_csv
from tuner.results.robust import RobustResult, robust_winners
from tuner.tracking.reader import ExperimentStore, spec_target
from tuner.tracking.winner_tags import write_winner_tags


def metric_slug(metric: str) -> str:
    """`eval/accuracy` -> `eval_accuracy`, so `best/<method>/<slug>` keeps exactly three parts."""
    return metric.replace("/", "_")


def _winner_run_ids(trials: pd.DataFrame, robust: RobustResult) -> dict[str, tuple[int, list[str]]]:
    """Runs (search and confirm) of each method's winning config, with the method's rank."""
    out = {}
    for _, row in robust.methods.iterrows():
        if not row["config_key"]:
            continue
        mask = (trials["method"] == row["method"]) & (trials["config_key"] == row["config_key"])
        out[row["method"]] = (int(row["rank"]), list(trials.loc[mask, "run_id"]))
    return out


def write_summary(store: ExperimentStore, table: pd.DataFrame, robust: RobustResult,
                  trials: pd.DataFrame) -> None:
    """Tag the best runs (clearing stale tags) and log the per-method summary to the parent run
    (`tuner.tracking.winner_tags` writes it)."""
    best = {rid: rank for rank, ids in _winner_run_ids(trials, robust).values() for rid in ids}
    slug = metric_slug(robust.metric)
    values: dict[str, float] = {}
    for _, row in table.iterrows():
        m = row["method"]
        values[f"best/{m}/{slug}"] = row["mean"]
        values[f"best_ci_low/{m}/{slug}"] = row["low"]
        values[f"best_ci_high/{m}/{slug}"] = row["high"]
        values[f"overhead/{m}"] = row["overhead"]
        values[f"divergence_rate/{m}"] = row["divergence_rate"]
        values[f"sensitivity/{m}"] = row["sensitivity"]
        for key in ("evals_to_target", "wall_s_to_target", "reached_target"):
            if key in row:
                values[f"{key}/{m}"] = row[key]
    winner = str(table["method"].iloc[0]) if len(table) else None
    write_winner_tags(store, best, values, winner, robust.source, summary_csv(table))


def winners(store: ExperimentStore, metric: str | None = None,
            goal: str | None = None) -> tuple[pd.DataFrame, RobustResult, pd.DataFrame]:
    """(per-method table in rank order, robust winners, trials) of an experiment: the one computation."""
    metric, goal = store.objective(metric, goal)
    trials = store.trials()
    constraints = stored_constraints(store)
    if constraints:  # the same rule as the report: winners among the runs that meet them
        trials = mark_feasible(trials, constraints)
    robust = robust_winners(trials, metric, goal)
    table = method_table(trials, robust)
    if len(table):  # what each method pays to reach the target (tuner.results.cost_to_target)
        target, baseline = spec_target(store)
        costs = cost_to_target(store, trials, table, metric, goal, target, baseline)
        table = table.merge(costs[COST_COLUMNS], on="method", how="left")
    return table, robust, trials


def tag_winners(name: str, *, tracking_uri: str | None = None, storage: str | Path | None = None,
                metric: str | None = None, goal: str | None = None) -> pd.DataFrame:
    """Compute the robust winners of experiment `name` and record them in MLflow; returns the table.

    The runner calls this at the end of `run`, so the parent run shows the winners without a report.
    """
    store = ExperimentStore.open(name, tracking_uri=tracking_uri, storage=storage)
    table, robust, trials = winners(store, metric, goal)
    write_summary(store, table, robust, trials)
    return table
