"""The confirmation's stress levels (label noise, SNR, ...): which condition was varied, the winner's runs
at the mildest level, and the winner's metric at every level with its seed interval.

Input is the tidy trials frame of `tuner.tracking.reader` (its `conditions` column holds each confirmation
run's workload overrides) and the robust winners of `tuner.results.robust`.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from tuner.results.robust import Interval, RobustResult, mean_interval


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


def winner_runs(trials: pd.DataFrame, robust: RobustResult, method: str, stress: str | None) -> pd.DataFrame:
    """The winner's runs; at the mildest stress level when the confirmation varied one."""
    row = robust.methods[robust.methods["method"] == method]
    if not len(row) or not row.iloc[0]["run_ids"]:
        return trials.iloc[0:0]
    runs = trials[trials["run_id"].isin(row.iloc[0]["run_ids"])]
    if stress and len(runs):
        levels = runs["conditions"].map(lambda c: c.get(stress, math.nan))
        runs = runs[levels == levels.min()]
    return runs


def stress_profile(trials: pd.DataFrame, run_ids: list[str], metric: str, stress: str) -> list[tuple[float, Interval]]:
    """(level, mean over seeds with its 95 % interval) of these runs at each level of `stress`, mildest first;
    diverged runs and runs without a finite value are left out."""
    runs = trials[trials["run_id"].isin(run_ids) & (trials["status"] != "diverged")]
    runs = runs[np.isfinite(runs[metric].astype(float))] if metric in runs else runs.iloc[0:0]
    levels = runs["conditions"].map(lambda c: c.get(stress, math.nan)).astype(float)
    return [(level, mean_interval(runs.loc[levels == level, metric].astype(float)))
            for level in sorted(set(levels.dropna()))]
