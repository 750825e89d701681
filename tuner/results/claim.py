"""The quantity a claim spec reproduces, per setting, beside the paper's number (`claim:`; issue 32).

`claim_table` is the one computation: `run`'s summary prints it and a report figure can draw it (one row
per setting: the mean over its runs with a 95 % interval over seeds, the claimed value and a verdict).

- `measure: final`: each run's last value of `claim.metric`, grouped by method and the `by` values (read
  from the run's hyperparameters, else its workload options); the confirmation runs when there are any
  (seeds), else the search runs. Pruned runs stopped early: they are counted and left out. A run whose
  value is not finite, or that diverged, counts as diverged.
- `measure: to_target`: per method, its winner's grad evals to the summary's target (the per-method
  table's `evals_to_target`) and their ratio to the first method's: "reaches AdamW's final loss in
  half the steps" is a ratio of 0.5.
A band `[low, high]` gives a verdict (`within` / `outside`, or `diverged` when every run of the setting
did); a number or the paper's words give none.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pandas as pd

from tuner.names import DIVERGED, PRUNED
from tuner.results.robust import UNFINISHED, mean_interval
from tuner.spec.model import Claim
from tuner.value_rules import is_number

WITHIN, OUTSIDE, DIVERGED_ALL = "within", "outside", "diverged"
COLUMNS = ["method", "setting", "first", "first_at", "mean", "low", "high", "n", "n_diverged", "n_pruned", "ratio",
           "reached", "expect", "verdict"]
History = Callable[[str, str], pd.DataFrame]  # (run_id, metric) -> its history, `ExperimentStore.metric_history`


def claim_from(spec: Mapping[str, Any]) -> Claim | None:
    """The claim of a resolved spec as stored with the experiment (`Spec.to_dict`; `ExperimentStore.spec()`)."""
    raw = spec.get("claim")
    if not isinstance(raw, Mapping):
        return None
    expect = {m: tuple(v) if isinstance(v, list) else v for m, v in (raw.get("expect") or {}).items()}
    return Claim(metric=raw["metric"], source=raw.get("source", ""), by=tuple(raw.get("by") or ()),
                 measure=raw.get("measure", "final"), expect=expect)


def verdict(value: float, expect: Any, diverged: bool = False) -> str:
    """`within` / `outside` a claimed band (`diverged` when every run did); '' where the claim is a number or
    words, or there is no value."""
    if not isinstance(expect, tuple):
        return ""
    if not is_number(value):
        return DIVERGED_ALL if diverged else ""
    return WITHIN if expect[0] <= value <= expect[1] else OUTSIDE


def _setting(run: pd.Series, by: Sequence[str]) -> tuple[Any, ...]:
    hparams, conditions = run["hparams"] or {}, run["conditions"] or {}
    return tuple(hparams.get(k, conditions.get(k)) for k in by)


def _order(value: Any) -> tuple[int, Any]:
    return (0, value) if is_number(value) else (1, str(value))


def _first(history: History | None, run_id: str, metric: str) -> tuple[float, float]:
    """(the run's first logged value of `metric`, its step in grad evals): where it started; NaN without one."""
    values = history(run_id, metric) if history is not None else pd.DataFrame()
    return (float(values["value"].iloc[0]), float(values["step"].iloc[0])) if len(values) else (math.nan, math.nan)


def _final(claim: Claim, trials: pd.DataFrame, history: History | None) -> list[dict[str, Any]]:
    runs = trials[~trials["status"].isin(UNFINISHED)]
    runs = runs[runs["phase"] == "confirm"] if (runs["phase"] == "confirm").any() else runs
    groups: dict[tuple[str, tuple[Any, ...]], list[pd.Series]] = {}
    for _, run in runs.iterrows():
        groups.setdefault((run["method"], _setting(run, claim.by)), []).append(run)
    rows = []
    for (method, setting), group in groups.items():
        finite, firsts, n_diverged, n_pruned = [], [], 0, 0
        for run in group:
            value = run.get(claim.metric)
            if run["status"] == PRUNED:
                n_pruned += 1
            elif run["status"] == DIVERGED or not is_number(value):
                n_diverged += 1
            else:
                finite.append(float(value))
            if run["status"] != PRUNED:
                firsts.append(_first(history, run["run_id"], claim.metric))
        stat = mean_interval(finite)
        steps = [at for _, at in firsts if math.isfinite(at)]
        rows.append({"method": method, "setting": dict(zip(claim.by, setting, strict=True)),
                     "first": mean_interval(v for v, _ in firsts).mean,
                     "first_at": float(pd.Series(steps).median()) if steps else math.nan, "mean": stat.mean,
                     "low": stat.low, "high": stat.high, "n": stat.n, "n_diverged": n_diverged,
                     "n_pruned": n_pruned, "ratio": math.nan, "reached": math.nan})
    return rows


def _to_target(table: pd.DataFrame, baseline: str | None) -> list[dict[str, Any]]:
    evals = dict(zip(table["method"], table.get("evals_to_target", pd.Series(math.nan, index=table.index)),
                     strict=True))
    base = evals.get(baseline, math.nan)
    return [{"method": row["method"], "setting": {}, "first": math.nan, "first_at": math.nan,
             "mean": row.get("evals_to_target", math.nan),
             "low": math.nan, "high": math.nan, "n": int(row.get("n_target_runs", 0) or 0), "n_diverged": 0,
             "n_pruned": 0, "reached": row.get("reached_target", math.nan),
             "ratio": row.get("evals_to_target", math.nan) / base if is_number(base) and base > 0 else math.nan}
            for _, row in table.iterrows()]


def claim_table(claim: Claim, trials: pd.DataFrame, table: pd.DataFrame | None = None,
                methods: Sequence[str] = (), history: History | None = None) -> pd.DataFrame:
    """One row per method and setting (`COLUMNS`), methods in `methods`' order (the spec's; the first is
    the baseline of `to_target`), settings in increasing order. `table` is the per-method table
    (`tuner.results.winners.winners`), needed by `measure: to_target` only; `history` (the store's
    `metric_history`) gives `first`, the metric's first logged value (mean over the setting's runs), and
    `first_at`, the grad evals it was logged at (their median)."""
    order = list(methods) or (sorted(trials["method"].dropna().unique()) if len(trials) else [])
    if claim.measure == "to_target":
        rows = _to_target(table, order[0] if order else None) if table is not None and len(table) else []
    else:
        rows = _final(claim, trials, history) if len(trials) else []
    for row in rows:
        row["expect"] = claim.expect.get(row["method"])
        value = row["ratio"] if claim.measure == "to_target" else row["mean"]
        row["verdict"] = verdict(value, row["expect"], diverged=row["n_diverged"] > 0 and not row["n"])
    rank = {m: i for i, m in enumerate(order)}
    rows.sort(key=lambda r: (rank.get(r["method"], len(rank)), r["method"],
                             [_order(v) for v in r["setting"].values()]))
    return pd.DataFrame(rows, columns=COLUMNS)
