"""Step-time overhead and how far to trust it: the spread across trials, and whether they shared the machine.

How it is measured: each trial logs `cost/step_time_ms`, the median wall-clock time of its optimizer steps
over its last reporting interval (`tuner.trial.trainer`); `tuner.results.method_table` takes a method's
median over its trials (search and confirmation, diverged ones left out) over the reference's (its base
optimizer). Trials run side by side (`budget.max_concurrent_trials`) on a machine that other work may load as
well, so one ratio can carry load. This module finds, from the runs' start and end times, which trials ran
while another trial of the experiment was running, and draws every trial's ratio with the interquartile range
across trials and the ratio the gradient evaluations per step alone predict.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib import pyplot as plt
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter

from dashboards.axes import tick_text
from dashboards.data import ReportData
from dashboards.marks import STATUS_ORDER, scatter_status, status_handles
from dashboards.plot_common import NoData, finite
from tuner.names import DIVERGED, STEP_TIME_MS


def overlapping(trials: pd.DataFrame) -> np.ndarray:
    """For each run, how many other runs of the experiment were running at some moment of its own run."""
    if not len(trials):
        return np.zeros(0, dtype=int)
    start = pd.to_datetime(trials["start_time"], utc=True).astype("int64").to_numpy()
    end = pd.to_datetime(trials["end_time"], utc=True)
    end = end.fillna(pd.to_datetime(trials["start_time"], utc=True)).astype("int64").to_numpy()
    overlaps = (start[:, None] < end[None, :]) & (start[None, :] < end[:, None])
    np.fill_diagonal(overlaps, False)
    return overlaps.sum(axis=1)


def reference_times(data: ReportData) -> dict[str, float]:
    """Per method, the median step time (ms) its overhead is relative to."""
    table = data.table
    if not len(table) or "overhead" not in table:
        return {}
    ref = table["step_time_ms"].astype(float) / table["overhead"].astype(float)
    return {m: float(t) for m, t in zip(table["method"], ref, strict=True) if math.isfinite(t) and t > 0}


def trial_ratios(data: ReportData) -> pd.DataFrame:
    """Every trial's step time over its method's reference: `method, status, ratio, overlapped`."""
    trials = data.trials.assign(_others=overlapping(data.trials)) if len(data.trials) else data.trials
    trials = finite(trials[trials["status"] != DIVERGED], STEP_TIME_MS) if len(trials) else trials
    ref = reference_times(data)
    rows = [{"method": r["method"], "status": r["status"], "ratio": float(r[STEP_TIME_MS]) / ref[r["method"]],
             "overlapped": bool(r["_others"] > 0)} for _, r in trials.iterrows() if r["method"] in ref]
    return pd.DataFrame(rows, columns=["method", "status", "ratio", "overlapped"])


def spread(ratios: pd.DataFrame, method: str) -> tuple[float, float]:
    """The interquartile range of one method's per-trial ratios (nan, nan without trials)."""
    mine = ratios.loc[ratios["method"] == method, "ratio"]
    return (float(mine.quantile(0.25)), float(mine.quantile(0.75))) if len(mine) else (math.nan, math.nan)


def load_note(data: ReportData) -> str:
    """How the overhead was measured and how loaded the machine was, in words for the report."""
    ratios = trial_ratios(data)
    if not len(ratios):
        return ""
    shared = int(ratios["overlapped"].sum())
    concurrency = f" (max_concurrent_trials = {data.max_concurrent})" if data.max_concurrent else ""
    return (f"Overhead is measured from the trials' own step times: each trial logs the median wall-clock time of "
            f"its optimizer steps, and a method's overhead is the median over its trials over the reference's. "
            f"{shared} of {len(ratios)} trials ran while another trial of this experiment was running"
            f"{concurrency}, and other work on the machine is not seen: step times carry that load. The bars and "
            f"boxes show the spread across trials (interquartile range); differences within it are noise. "
            f"The diamonds are the overhead that gradient evaluations per step alone predict.")


def _reference_evals(data: ReportData, method: str) -> float:
    """Gradient evaluations per step of `method`'s reference (the method whose step time is its reference)."""
    target = reference_times(data).get(method)
    table = data.table[np.isfinite(data.table["step_time_ms"].astype(float))]
    if target is None or not len(table):
        return math.nan
    closest = (table["step_time_ms"].astype(float) - target).abs().idxmin()
    return float(table.at[closest, "grad_evals_per_step"])


def overhead_spread(data: ReportData) -> Figure:
    """Every trial's step-time ratio per method, its interquartile box, the method's median and the
    gradient-evaluation prediction: how much of an overhead difference is the method and how much is load."""
    ratios = trial_ratios(data)
    methods = [m for m in data.methods if (ratios["method"] == m).any()]
    if not methods:
        raise NoData(f"needs {STEP_TIME_MS} logged by the trials and a reference method")
    fig, ax = plt.subplots(figsize=(max(5.0, 1.6 * len(methods) + 2.5), 4.4), constrained_layout=True)
    rng = np.random.default_rng(0)
    predicted = False
    table = data.table.set_index("method")
    for i, method in enumerate(methods):
        mine = ratios[ratios["method"] == method]
        style = data.style(method)
        box = ax.boxplot([mine["ratio"]], positions=[i], widths=0.5, showfliers=False, whis=(0, 100),
                         patch_artist=True, medianprops={"color": style.color, "lw": 2})
        box["boxes"][0].set(facecolor=style.color, alpha=0.15, edgecolor=style.color)
        x = i + rng.uniform(-0.15, 0.15, len(mine))
        for outcome in STATUS_ORDER:
            mask = (mine["status"] == outcome).to_numpy()
            scatter_status(ax, x[mask], mine["ratio"].to_numpy()[mask], style, outcome, gid=f"{method}:{outcome}",
                           size=22, alpha=0.8)
        expected = float(table.at[method, "grad_evals_per_step"]) / _reference_evals(data, method)
        if math.isfinite(expected):
            predicted = True
            ax.scatter([i + 0.33], [expected], marker="D", s=40, color="white", edgecolors="black", zorder=4,
                       gid=f"{method}:expected")
    labels = [f"{m}\n{int((ratios['method'] == m).sum())} trials, "
              f"{int(ratios.loc[ratios['method'] == m, 'overlapped'].sum())} beside another" for m in methods]
    ax.set_xticks(range(len(methods)), labels, fontsize=8)
    ax.axhline(1.0, color="black", lw=0.8, ls=":")
    ax.set_yscale("log")  # a ratio: 2x above and 2x below the reference are the same distance
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: tick_text(v)))
    ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _pos: tick_text(v) if str(tick_text(v))[0] in "235" else ""))
    ref_label = data.table["overhead_reference"].iloc[0] if "overhead_reference" in data.table else "reference"
    ax.set(ylabel="step time ÷ the reference's median (×)",
           title=f"Step-time overhead of every trial (reference: {ref_label})")
    handles = [Patch(facecolor="#bbbbbb", edgecolor="#555555", label="trials' range, box: interquartile"),
               *status_handles(set(ratios["status"]))]
    if predicted:
        handles.append(Line2D([], [], ls="none", marker="D", color="white", markeredgecolor="black",
                              label="predicted by gradient evaluations per step"))
    ax.legend(handles=handles, fontsize=7)
    ax.grid(alpha=0.3, axis="y")
    return fig
