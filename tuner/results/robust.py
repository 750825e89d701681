"""Robust winners: judge a config by its mean over seeds and the 95 % interval's worse end.

The luckiest search trial is a poor guide to what a user will see when they re-run the config; the
lower bound of a t-interval over confirmation seeds (upper bound when minimising) rewards configs that
are both good and stable. Pure pandas and `math` (no scipy), so the runner can call it cheaply.

Input is the tidy trials frame from `tuner.tracking.reader.trials_frame` (one row per child run) with columns
`run_id, method, phase, status, seed, config_key, hparams, conditions, start_time` and one column per
metric name holding the run's final value.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from tuner.value_rules import goal_sign as _sign

LEVEL = 0.95
NEAR_BEST = 0.01  # "within 1 % of that method's best"
UNFINISHED = ("errored", "interrupted")  # runs that ended for reasons other than their config


# --- Student-t quantiles without scipy --------------------------------------------------------------
def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny, qab, qap, qam = 1e-300, a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with `df` degrees of freedom."""
    tail = 0.5 * _betainc(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


def t_quantile(p: float, df: float) -> float:
    """Inverse of `t_cdf` by bisection (exact to ~1e-12; scipy is not a dependency)."""
    if not 0.0 < p < 1.0 or df <= 0:
        raise ValueError(f"t_quantile needs 0 < p < 1 and df > 0, got p={p}, df={df}")
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    low, high = 0.0, 1.0
    while t_cdf(high, df) < p:
        high *= 2.0
    for _ in range(200):
        mid = 0.5 * (low + high)
        if t_cdf(mid, df) < p:
            low = mid
        else:
            high = mid
        if high - low < 1e-13 * max(1.0, high):
            break
    return 0.5 * (low + high)


@dataclass(frozen=True)
class Interval:
    """Mean of n values with a two-sided t-interval; `low`/`high` are NaN when n < 2."""

    mean: float
    low: float
    high: float
    n: int
    std: float

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2.0


def mean_interval(values: Iterable[float], level: float = LEVEL) -> Interval:
    """Mean and `level` Student-t interval of the finite values (sample std, n - 1 dof)."""
    arr = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    n = int(arr.size)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0, math.nan)
    mean = float(arr.mean())
    if n < 2:
        return Interval(mean, math.nan, math.nan, 1, math.nan)
    std = float(arr.std(ddof=1))
    half = t_quantile(0.5 + level / 2.0, n - 1) * std / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n, std)


# --- winners ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RobustResult:
    """Every config's statistic, each method's winner, and where the numbers came from."""

    metric: str
    goal: str  # maximize | minimize
    source: str  # confirm | search
    note: str
    configs: pd.DataFrame  # one row per (method, config_key), best first within a method
    methods: pd.DataFrame  # one row per method (its winner + divergence + sensitivity), overall rank order


def pessimistic_value(mean: float, low: float, high: float, goal: str) -> float:
    """The interval's worse end for `goal` (`low` when maximising, `high` when minimising); the mean when
    there is no interval. What a config is ranked by, and what the Pareto front compares."""
    bound = low if _sign(goal) > 0 else high
    return bound if math.isfinite(bound) else mean


def _rank_key(row: pd.Series, goal: str) -> float:
    """Larger is better: the pessimistic end of the interval (the mean when there is no interval)."""
    if row["n_diverged"] > 0 or not math.isfinite(row["mean"]):
        return -math.inf
    return _sign(goal) * pessimistic_value(row["mean"], row["low"], row["high"], goal)


def _tier(key: float, full_budget: bool) -> int:
    """Ranking tiers: a config that ran its whole budget (2), one whose every run was pruned, so its value
    is from early in training (1), one that diverged or has no value (0)."""
    if not math.isfinite(key):
        return 0
    return 2 if full_budget else 1


def _config_rows(runs: pd.DataFrame, metric: str) -> list[dict]:
    """Seeds are the independent unit: a seed's score is its mean over the stress levels."""
    rows = []
    for (method, key), group in runs.groupby(["method", "config_key"], sort=True):
        values = group[metric].astype(float) if metric in group else pd.Series(np.nan, index=group.index)
        diverged = (group["status"] == "diverged") | ~np.isfinite(values.to_numpy())
        ok = group[~diverged.to_numpy()]
        if ok["seed"].notna().any() and (group["phase"] == "confirm").all():
            scores = ok.assign(_v=values[ok.index]).groupby("seed")["_v"].mean().tolist()
        else:
            scores = values[ok.index].tolist()
        stat = mean_interval(scores)
        rows.append({
            "method": method, "config_key": key, "hparams": group["hparams"].iloc[0],
            "mean": stat.mean, "low": stat.low, "high": stat.high, "std": stat.std, "n": stat.n,
            "n_runs": len(group), "n_diverged": int(diverged.sum()),
            "seeds": sorted({int(s) for s in group["seed"].dropna()}),
            "run_ids": list(group["run_id"]),
            "full_budget": bool((group["status"] == "completed").any()),
        })
    return rows


def sensitivity(values: Iterable[float], goal: str, within: float = NEAR_BEST) -> float:
    """Share of trials within `within` (relative) of the best: high means easy to tune."""
    sign = _sign(goal)
    arr = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if arr.size == 0:
        return math.nan
    best = arr.max() if sign > 0 else arr.min()
    tol = within * abs(best)
    with np.errstate(over="ignore"):  # a loss near the float limit (a diverging trial) overflows best + tol
        near = arr >= best - tol if sign > 0 else arr <= best + tol
    return float(near.mean())


def robust_winners(trials: pd.DataFrame, metric: str, goal: str) -> RobustResult:
    """Rank each method's configs by the pessimistic interval bound and the methods by their winners.

    Uses the confirmation runs; without any, falls back to the search trials (one value per trial, no
    interval) and says so in `note`. Configs with a diverged run rank last; errored and interrupted
    runs count towards the run totals only. A config whose every run was pruned holds a value from
    early in training, not comparable with a finished run's: it ranks after every config that ran its
    whole budget, and a method with nothing better ranks after the methods that have one.
    """
    _sign(goal)  # a goal other than maximize/minimize fails here, before any row
    finished = trials[~trials["status"].isin(UNFINISHED)]  # their last value is not the config's result
    constrained = "feasible" in trials  # `constraints:` (tuner.results.feasible): winners among feasible runs
    if constrained:
        finished = finished[finished["feasible"].astype(bool)]
    confirm = finished[finished["phase"] == "confirm"]
    search = finished[finished["phase"] == "search"]
    if len(confirm):
        source, pool = "confirm", confirm
        note = "winners from the confirmation runs: mean over seeds (each seed averaged over stress levels)"
    else:
        source, pool = "search", search
        note = ("no confirmation phase: winners are the best search trials (no seed interval); "
                "add `confirm:` to the spec for robust winners")
    if constrained:
        note += "; only runs that meet the spec's constraints can win"
    configs = pd.DataFrame(_config_rows(pool, metric)) if len(pool) else pd.DataFrame(
        columns=["method", "config_key", "hparams", "mean", "low", "high", "std", "n", "n_runs", "n_diverged",
                 "seeds", "run_ids", "full_budget"])
    if len(configs):
        configs["key"] = configs.apply(_rank_key, axis=1, goal=goal)
        configs["tier"] = [_tier(k, full) for k, full in zip(configs["key"], configs["full_budget"], strict=True)]
        configs = configs.sort_values(["method", "tier", "key"], ascending=[True, False, False], kind="stable")
        configs["config_rank"] = configs.groupby("method").cumcount() + 1
    rows = []
    for method in sorted(trials["method"].dropna().unique()):
        mine = trials[trials["method"] == method]
        diverged = int((mine["status"] == "diverged").sum())
        values = search.loc[search["method"] == method, metric] if metric in search else pd.Series(dtype=float)
        row = {"method": method, "divergence_rate": diverged / len(mine), "n_diverged": diverged,
               "n_runs_total": len(mine), "n_search": int((search["method"] == method).sum()),
               "sensitivity": sensitivity(values.astype(float).tolist(), goal),
               "n_infeasible": int((~mine["feasible"].astype(bool)).sum()) if constrained else 0}
        best = configs[configs["method"] == method].head(1) if len(configs) else configs
        if len(best):
            b = best.iloc[0]
            row.update({k: b[k] for k in ("config_key", "hparams", "mean", "low", "high", "std", "n", "n_runs",
                                          "seeds", "run_ids", "key", "full_budget", "tier")})
            row["winner_diverged"] = int(b["n_diverged"])
        else:
            row.update({"config_key": None, "hparams": {}, "mean": math.nan, "low": math.nan, "high": math.nan,
                        "std": math.nan, "n": 0, "n_runs": 0, "seeds": [], "run_ids": [], "key": -math.inf,
                        "full_budget": False, "tier": 0, "winner_diverged": 0})
        rows.append(row)
    methods = pd.DataFrame(rows)
    if len(methods):
        methods = methods.sort_values(["tier", "key"], ascending=False, kind="stable").reset_index(drop=True)
        methods["rank"] = np.arange(1, len(methods) + 1)
    return RobustResult(metric, goal, source, note, configs.reset_index(drop=True), methods)
