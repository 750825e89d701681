"""Put the winners where the MLflow UI shows them: parent-run metrics, summary.csv, best-run tags.

`winners` is the one computation of the winners (robust winners, then the per-method table): the
runner prints it and `tag_winners` records it at the end of `run`, so the printed winner is the tagged
one; the report calls `write_summary` with the table it has already computed. No plotting here.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import pandas as pd
from mlflow.entities import Metric, RunTag

from tuner.layout import BEST_TAG, MLFLOW_BATCH, RANK_TAG, WINNER_SOURCE_TAG, WINNER_TAG, now_ms, tag_column
from tuner.results.cost_to_target import COLUMNS as COST_COLUMNS
from tuner.results.cost_to_target import cost_to_target
from tuner.results.feasible import mark_feasible, stored_constraints
from tuner.results.method_table import method_table, summary_csv
from tuner.results.robust import RobustResult, robust_winners
from tuner.results.store import ExperimentStore, spec_target


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
    """Tag the best runs (clearing stale tags) and log the per-method summary to the parent run."""
    client = store.client
    winners = _winner_run_ids(trials, robust)
    tagged = {rid for _, ids in winners.values() for rid in ids}
    runs = store.runs()
    if tag_column(BEST_TAG) in runs.columns:
        stale = runs.loc[(runs[tag_column(BEST_TAG)] == "true") & ~runs["run_id"].isin(tagged), "run_id"]
        for rid in stale:
            client.set_tag(rid, BEST_TAG, "false")
            client.delete_tag(rid, RANK_TAG)
    for rank, ids in winners.values():
        for rid in ids:
            client.log_batch(rid, tags=[RunTag(BEST_TAG, "true"), RunTag(RANK_TAG, str(rank))])
    parent = store.parent()
    if parent is None:
        return
    pid = parent["run_id"]
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
    now = now_ms()
    metrics = [Metric(k, float(v), now, 0) for k, v in values.items() if v is not None and math.isfinite(v)]
    tags = [RunTag(WINNER_TAG, str(table["method"].iloc[0]))] if len(table) else []
    tags.append(RunTag(WINNER_SOURCE_TAG, robust.source))
    for i in range(0, max(len(metrics), 1), MLFLOW_BATCH):
        client.log_batch(pid, metrics=metrics[i:i + MLFLOW_BATCH], tags=tags if i == 0 else [])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "summary.csv"
        path.write_text(summary_csv(table), encoding="utf-8")
        client.log_artifact(pid, str(path))
    store.runs(refresh=True)


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
