"""The per-method table: robust best, cost relative to the base optimizer, divergence, sensitivity, errors.

Overhead is the median step time of a method over its base optimizer's (the sgd or adamw run of the
same experiment); when that base was not run, over the cheapest method's, and the table says which.
`tuner.results.winners` logs it to MLflow (and summary.csv); the report and `run`'s summary print it.
`pareto_front` is the front the report draws over the table (robust metric against overhead).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from methods import ConfigError, get_method
from tuner.hparams import method_hparams
from tuner.names import PEAK_MEM_MB, STEP_TIME_MS
from tuner.results.robust import RobustResult, pessimistic_value
from tuner.value_rules import goal_sign

STEP_TIME = STEP_TIME_MS
PEAK_MEM = PEAK_MEM_MB
BASES = ("sgd", "adamw")


def errors_by_method(trials: pd.DataFrame) -> pd.DataFrame:
    """Errored runs per method of a `trials_frame`: `method, n_errored, first_error` (the error line of
    the method's earliest errored run), methods without errors left out, in method order."""
    errored = trials[trials["status"] == "errored"].sort_values("start_time", kind="stable") \
        if len(trials) else trials
    rows = [{"method": method, "n_errored": len(group),
             "first_error": next((e for e in group["error"] if isinstance(e, str)), "no error message recorded")}
            for method, group in errored.groupby("method", sort=True)]
    return pd.DataFrame(rows, columns=["method", "n_errored", "first_error"])


def _median(trials: pd.DataFrame, method: str, key: str) -> float:
    if key not in trials:
        return math.nan
    values = trials.loc[(trials["method"] == method) & (trials["status"] != "diverged"), key].astype(float)
    values = values[np.isfinite(values)]
    return float(values.median()) if len(values) else math.nan


def _base_of(method: str, hparams: dict[str, Any]) -> str | None:
    if method in BASES:
        return method
    if hparams.get("base") in BASES:
        return str(hparams["base"])
    try:
        return get_method(method).default_base
    except ConfigError:  # a method this version no longer has
        return None


def _grad_evals_per_step(method: str, hparams: dict[str, Any]) -> float:
    """Declared by the method's preset for the winning hyperparameters."""
    try:
        info = get_method(method)
        return float(info.grad_evals_per_step(**method_hparams(method, hparams)))
    except (ValueError, TypeError):  # ConfigError is a ValueError: an unknown method or bad values
        return math.nan


def overheads(trials: pd.DataFrame, robust: RobustResult) -> pd.DataFrame:
    """Median step time per method and its ratio to the reference (base optimizer, else the cheapest)."""
    methods = list(robust.methods["method"]) if len(robust.methods) else []
    hp = dict(zip(robust.methods.get("method", []), robust.methods.get("hparams", []), strict=True))
    times = {m: _median(trials, m, STEP_TIME) for m in methods}
    finite = {m: t for m, t in times.items() if math.isfinite(t) and t > 0}
    cheapest = min(finite, key=finite.get) if finite else None
    rows = []
    for m in methods:
        base = _base_of(m, hp.get(m) or {})
        if base in finite:
            ref, label = base, f"base {base}"
        elif cheapest is not None:
            ref, label = cheapest, f"cheapest ({cheapest}; base {base or '?'} not run)"
        else:
            ref, label = None, "no step times logged"
        ratio = times[m] / finite[ref] if ref is not None and math.isfinite(times[m]) else math.nan
        rows.append({"method": m, "step_time_ms": times[m], "overhead": ratio, "overhead_reference": label})
    return pd.DataFrame(rows, columns=["method", "step_time_ms", "overhead", "overhead_reference"])


def method_table(trials: pd.DataFrame, robust: RobustResult) -> pd.DataFrame:
    """One row per method in rank order: the numbers behind the summary table and summary.csv."""
    if not len(robust.methods):
        return pd.DataFrame(columns=["rank", "method"])
    table = robust.methods.merge(overheads(trials, robust), on="method", how="left")
    table["grad_evals_per_step"] = [_grad_evals_per_step(m, h or {}) for m, h in
                                    zip(table["method"], table["hparams"], strict=True)]
    table["peak_mem_mb"] = [_median(trials, m, PEAK_MEM) for m in table["method"]]
    table["source"] = robust.source
    table["metric"] = robust.metric
    errors = errors_by_method(trials).set_index("method") if "error" in trials else None
    table["n_errored"] = [int(errors.at[m, "n_errored"]) if errors is not None and m in errors.index else 0
                          for m in table["method"]]
    table["first_error"] = [errors.at[m, "first_error"] if errors is not None and m in errors.index else ""
                            for m in table["method"]]
    cols = ["rank", "method", "metric", "mean", "low", "high", "n", "source", "overhead", "overhead_reference",
            "step_time_ms", "grad_evals_per_step", "peak_mem_mb", "divergence_rate", "n_diverged", "n_runs_total",
            "n_errored", "first_error", "n_infeasible", "sensitivity", "n_search", "hparams", "run_ids", "seeds",
            "winner_diverged", "full_budget"]
    return table[cols].reset_index(drop=True)


def pareto_front(table: pd.DataFrame, goal: str) -> list[tuple[float, float]]:
    """(overhead, mean) of the methods that no cheaper method beats, cheapest first.

    A method is judged by its winner's pessimistic interval bound (`robust.pessimistic_value`, the rule
    that ranks it), among the methods with a finite overhead and mean.
    """
    sign = goal_sign(goal)
    ok = table[np.isfinite(table["overhead"].astype(float)) & np.isfinite(table["mean"].astype(float))]
    robust = [pessimistic_value(r["mean"], r["low"], r["high"], goal) for _, r in ok.iterrows()]
    front, best = [], -math.inf
    for x, y, mean in sorted(zip(ok["overhead"], robust, ok["mean"], strict=True)):
        if sign * y > best:
            front.append((float(x), float(mean)))
            best = sign * y
    return front


def summary_csv(table: pd.DataFrame) -> str:
    """The table as CSV text, hyperparameters flattened to `hp.<name>` columns."""
    flat = table.drop(columns=["hparams", "run_ids", "seeds"]).copy()
    flat["seeds"] = [" ".join(str(s) for s in seeds) for seeds in table["seeds"]]
    flat["run_ids"] = [" ".join(ids) for ids in table["run_ids"]]
    names = sorted({k for h in table["hparams"] for k in (h or {})})
    for name in names:
        flat[f"hp.{name}"] = [(h or {}).get(name) for h in table["hparams"]]
    return flat.to_csv(index=False)
