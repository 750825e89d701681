"""What the end-of-run summary must say beside its numbers: the ranking rule in words, each winner's result
per stress condition, and the per-method warnings a reader needs before trusting a row.

Data and sentences only; `tuner.run.console` lays them out. The ranking rule is worded from the code
that ranks (`tuner.results.robust.robust_winners`): if that changes, `ranking_rule` changes with it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from tuner.results.robust import LEVEL, Interval
from tuner.results.stress import stress_condition, stress_profile
from tuner.value_rules import goal_sign, is_number

MIN_COMPLETED = 3  # fewer completed search trials than this: the winner was picked among too few full runs
CLEAN = "clean"  # the column of label noise 0


def ranking_rule(metric: str, goal: str, source: str, with_interval: bool, constrained: bool) -> str:
    """One sentence: what a method's number is and what orders the methods (the code's rule, in words)."""
    end = "lower" if goal_sign(goal) > 0 else "upper"
    better = "highest" if goal_sign(goal) > 0 else "lowest"
    if source == "confirm":
        value = f"its mean {metric} over the confirmation seeds (each seed averaged over the stress levels)"
    else:
        value = (f"its final {metric} in the search, averaged over the runs of a config that ran more than once "
                 "(no confirmation phase: add `confirm:` for seed intervals)")
    if with_interval:
        order = (f"ranked by the {end} end of the {LEVEL:.0%} t-interval of that mean, not by the mean "
                 f"({better} first; the mean where a config has a single run)")
    else:
        order = f"ranked by that value ({better} first; one run per config, so no interval)"
    only = "; only runs that meet the spec's constraints can win" if constrained else ""
    return (f"ranking: each method's winner is its best config by {value}, {order}; a config whose every run "
            f"was pruned ranks after those that ran the whole budget, one with a diverged run last{only}")


def condition_label(name: str, level: float) -> str:
    """The column title of one stress level: `clean` for label noise 0, else `noise 0.2`, `snr 10`."""
    if name == "label_noise":
        return CLEAN if level == 0 else f"noise {level:g}"
    return f"{name.replace('_', ' ')} {level:g}"


def by_condition(trials: pd.DataFrame | None, table: pd.DataFrame,
                 metric: str) -> tuple[list[str], dict[str, dict[str, Interval]]]:
    """(column titles, {method: {title: its winner's mean over seeds at that level}}) for the confirmation's
    varied stress condition; no columns when it varied none (or there are no trials)."""
    if trials is None or not len(trials) or "phase" not in trials or metric not in trials:
        return [], {}
    stress = stress_condition(trials)
    if stress is None:
        return [], {}
    out: dict[str, dict[str, Interval]] = {}
    levels: set[float] = set()
    for _, row in table.iterrows():
        profile = stress_profile(trials, list(row.get("run_ids") or []), metric, stress)
        out[row["method"]] = {condition_label(stress, level): stat for level, stat in profile}
        levels |= {level for level, _ in profile}
    return [condition_label(stress, level) for level in sorted(levels)], out


def _same(a: Any, b: Any) -> bool:
    if is_number(a) and is_number(b):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
    return a == b


def queued_winner(method: str, hparams: Mapping[str, Any] | None,
                  enqueue: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The spec's queued config (`enqueue`) that the winner is, if any: asked first, never beaten."""
    hparams = hparams or {}
    for entry in enqueue:
        values = {k: v for k, v in entry.items() if k != "method"}
        if entry.get("method") == method and values and all(_same(hparams.get(k), v) for k, v in values.items()):
            return entry
    return None


def method_warnings(method: str, row: pd.Series | None, completed: int,
                    enqueue: Sequence[Mapping[str, Any]]) -> list[str]:
    """Why a method's row may mislead: an untuned queued winner, a winner from pruned trials only, too
    few completed search trials (`MIN_COMPLETED`). `row` is the method's table row (None without one)."""
    out = []
    has_value = row is not None and is_number(row.get("mean"))
    if has_value and queued_winner(method, row.get("hparams"), enqueue) is not None:
        out.append(f"warning: {method}'s winner is the config queued first by `enqueue` (e.g. paper defaults): "
                   "the search never beat it, so this method is effectively untuned")
    if has_value and not bool(row.get("full_budget", True)):
        out.append(f"warning: {method}'s winner comes only from pruned trials: its value is from early in "
                   "training, not comparable with a full run's")
    if 0 < completed < MIN_COMPLETED:
        out.append(f"warning: {method} had {completed} completed search trial{'s' if completed > 1 else ''} "
                   f"(fewer than {MIN_COMPLETED}): its winner was picked among too few full runs to trust")
    return out
