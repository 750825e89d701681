"""The report's figures. Each function returns a matplotlib Figure or raises NoData saying what is missing.

Every figure uses `method_color`, labelled axes with units, and the experiment's metric name.
"""

from __future__ import annotations

import math
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import NullFormatter  # noqa: E402

from dashboards.colors import method_color  # noqa: E402
from dashboards.data import ReportData  # noqa: E402
from tuner.results.importances import searched_params  # noqa: E402
from tuner.results.method_table import pareto_front  # noqa: E402
from tuner.results.stress import stress_profile, winner_runs  # noqa: E402
from tuner.trial.protocol import GRAD_EVALS, STEP_TIME_MS, WALL_S  # noqa: E402
from tuner.value_rules import goal_sign  # noqa: E402


class NoData(Exception):
    """A section has nothing to show; the message says why (it goes into the report)."""


def _finite(df: pd.DataFrame, key: str) -> pd.DataFrame:
    if key not in df:
        return df.iloc[0:0]
    return df[np.isfinite(df[key].astype(float))]


def _better(goal: str) -> str:
    return "higher is better" if goal == "maximize" else "lower is better"


def best_so_far(data: ReportData) -> Figure:
    """Tuning progress per method: best metric found vs cumulative gradient evaluations and wall time."""
    search = _finite(data.search[data.search["status"] != "diverged"], data.metric)
    if not len(search):
        raise NoData(f"no search trials with a finite {data.metric}")
    has_wall = WALL_S in search
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), constrained_layout=True)
    sign = goal_sign(data.goal)
    for method, group in search.groupby("method"):
        group = group.sort_values("start_time")
        values = group[data.metric].astype(float).to_numpy()
        best = sign * np.maximum.accumulate(sign * values)
        evals = np.cumsum(group[GRAD_EVALS].fillna(0).to_numpy()) if GRAD_EVALS in group else \
            np.arange(1, len(group) + 1)
        color = method_color(method)
        axes[0].step(evals, best, where="post", color=color, label=method, marker="o", ms=3)
        if has_wall:
            axes[1].step(np.cumsum(group[WALL_S].fillna(0).to_numpy()), best, where="post", color=color,
                         label=method, marker="o", ms=3)
    axes[0].set(xlabel="cumulative gradient evaluations spent tuning (count)",
                ylabel=f"best {data.metric} so far", title="Best so far vs compute")
    axes[1].set(xlabel="cumulative trial wall time (s)", ylabel=f"best {data.metric} so far",
                title="Best so far vs wall time" if has_wall else "no cost/wall_s logged")
    for method in data.methods:
        curves = data.histories.get(method, {}).get(data.metric, [])
        curves = [c for c in curves if len(c)]
        if not curves:
            continue
        merged = pd.concat(curves).groupby("step")["value"].mean()
        axes[2].plot(merged.index, merged.to_numpy(), color=method_color(method), label=f"{method} (n={len(curves)})")
    axes[2].set(xlabel="gradient evaluations (count)", ylabel=data.metric,
                title="Winning config's training curve (mean over seeds)")
    for ax in axes:
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    return fig


def pareto(data: ReportData) -> Figure:
    """Robust best metric vs step-time overhead: the front holds the methods nothing beats on both."""
    table = data.table[np.isfinite(data.table["overhead"].astype(float)) &
                       np.isfinite(data.table["mean"].astype(float))]
    if not len(table):
        raise NoData(f"needs both {data.metric} and cost/step_time_ms for at least one method")
    fig, ax = plt.subplots(figsize=(7.5, 5), constrained_layout=True)
    ref_time = dict(zip(data.table["method"], data.table["step_time_ms"] / data.table["overhead"], strict=True))
    trials = _finite(_finite(data.search[data.search["status"] != "diverged"], data.metric), STEP_TIME_MS)
    for method, group in trials.groupby("method"):
        if method in ref_time and math.isfinite(ref_time[method]):
            ok = group["feasible"].astype(bool) if "feasible" in group else np.ones(len(group), dtype=bool)
            ax.scatter(group[STEP_TIME_MS][ok] / ref_time[method], group[data.metric][ok], s=14, alpha=0.3,
                       color=method_color(method))
            ax.scatter(group[STEP_TIME_MS][~ok] / ref_time[method], group[data.metric][~ok], s=22,
                       alpha=0.6, marker="x", color=method_color(method))  # breaks a spec constraint
    for _, row in table.iterrows():
        low, high = row["low"], row["high"]
        yerr = [[row["mean"] - low], [high - row["mean"]]] if math.isfinite(low) else None
        ax.errorbar(row["overhead"], row["mean"], yerr=yerr, fmt="o", ms=8, capsize=4,
                    color=method_color(row["method"]), label=f"{row['method']} ({row['overhead']:.2f}×)")
    front = pareto_front(data.table, data.goal)
    if len(front) > 1:
        ax.step(*zip(*front, strict=True), where="post", color="black", ls="--", lw=1,
                label=f"Pareto front (by the {'lower' if data.goal == 'maximize' else 'upper'} CI bound)")
    if "feasible" in trials and not trials["feasible"].astype(bool).all():
        ax.scatter([], [], marker="x", color="grey", label="search trial outside the constraints")
    ax.set(xlabel=f"step time relative to reference (×); reference: {table['overhead_reference'].iloc[0]}",
           ylabel=f"robust {data.metric} (mean, 95% CI)", title=f"Metric vs compute overhead ({_better(data.goal)})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def robustness(data: ReportData) -> Figure:
    """The winner's metric at each stress level, mean over seeds with its 95 % t-interval."""
    if data.stress is None:
        raise NoData("no confirmation runs that vary label noise (or another stress level); "
                     "add `confirm: {seeds: [...], label_noise: [...]}` to the spec")
    fig, ax = plt.subplots(figsize=(7.5, 5), constrained_layout=True)
    offsets = np.linspace(-0.15, 0.15, max(len(data.methods), 1))
    for off, method in zip(offsets, data.methods, strict=True):
        row = data.table[data.table["method"] == method].iloc[0]
        profile = stress_profile(data.trials, row["run_ids"], data.metric, data.stress)
        if not profile:
            continue
        xs, means, lo, hi = [], [], [], []
        for level, stat in profile:
            xs.append(level)
            means.append(stat.mean)
            lo.append(stat.mean - stat.low if math.isfinite(stat.low) else 0.0)
            hi.append(stat.high - stat.mean if math.isfinite(stat.high) else 0.0)
        step = (max(xs) - min(xs)) if len(xs) > 1 else 1.0
        ax.errorbar(np.asarray(xs) + off * step * 0.2, means, yerr=[lo, hi], marker="o", capsize=4,
                    color=method_color(method), label=f"{method} (seeds {', '.join(map(str, row['seeds']))})")
    label = {"label_noise": "label noise (fraction of flipped labels)", "snr": "signal-to-noise ratio"}
    ax.set(xlabel=label.get(data.stress, data.stress), ylabel=f"{data.metric} (mean over seeds, 95% CI)",
           title="Robustness profile of each method's winning config")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def ecdf(data: ReportData) -> Figure:
    """Distribution of the final metric over search trials: a curve hugging the best means easy tuning."""
    search = _finite(data.search, data.metric)
    if not len(search):
        raise NoData(f"no search trials with a finite {data.metric}")
    fig, ax = plt.subplots(figsize=(7.5, 5), constrained_layout=True)
    sens = dict(zip(data.table["method"], data.table["sensitivity"], strict=True))
    for method, group in search.groupby("method"):
        values = np.sort(group[data.metric].astype(float).to_numpy())
        frac = np.arange(1, len(values) + 1) / len(values)
        share = sens.get(method, math.nan)
        ax.step(values, frac, where="post", color=method_color(method),
                label=f"{method}: {share:.0%} of {len(values)} trials within 1% of best")
    ax.set(xlabel=f"final {data.metric} of a search trial", ylabel="fraction of trials ≤ x",
           title=f"ECDF of search trials ({_better(data.goal)})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def _is_numeric(values: list[Any]) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def hparam_slices(data: ReportData, method: str) -> Figure:
    """Final metric against each searched hyperparameter of one method (hollow: pruned, x: diverged)."""
    search = data.search[data.search["method"] == method]
    search = _finite(search, data.metric)
    names = searched_params(search)
    if not names:
        raise NoData(f"{method}: no hyperparameter took more than one value in the search")
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.6), constrained_layout=True, squeeze=False)
    color = method_color(method)
    for ax, name in zip(axes[0], names, strict=True):
        values = [h.get(name) for h in search["hparams"]]
        y = search[data.metric].astype(float).to_numpy()
        if _is_numeric([v for v in values if v is not None]):
            x = np.asarray([math.nan if v is None else float(v) for v in values])
            pos = x[np.isfinite(x)]
            if len(pos) and pos.min() > 0 and pos.max() / pos.min() > 20:
                ax.set_xscale("log")
                ax.xaxis.set_minor_formatter(NullFormatter())
        else:
            cats = sorted({repr(v) for v in values})
            x = np.asarray([cats.index(repr(v)) for v in values], dtype=float)
            x = x + np.random.default_rng(0).uniform(-0.08, 0.08, len(x))
            ax.set_xticks(range(len(cats)), [c.strip("'") for c in cats])
        for status, marker, face in (("completed", "o", color), ("pruned", "o", "none"), ("diverged", "x", color)):
            mask = (search["status"] == status).to_numpy()
            if mask.any():
                style = {"color": color} if marker == "x" else {"facecolors": face, "edgecolors": color}
                ax.scatter(x[mask], y[mask], marker=marker, s=30, label=status, **style)
        ax.set(xlabel=name, ylabel=f"final {data.metric}", title=f"{method}: {name}")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    return fig


_DIAG_PANELS = (
    ("diag/balancedness_mean", "balancedness mean |‖x‖²−‖y‖²|"),
    ("diag/lambda_max", "λ_max (solid) and SAM edge (dashed)"),
    ("diag/lambda_over_edge", "λ_max / SAM edge (ratio)"),
    ("diag/hessian_trace", "Hessian trace Tr(H)"),
)


def diagnostics(data: ReportData) -> Figure:
    """Winners' diagnostics over training where they were logged (mean over the winner's runs)."""
    panels = [(k, t) for k, t in _DIAG_PANELS if any(h.get(k) for h in data.histories.values())]
    if not panels:
        raise NoData("no diag/* metrics were logged (set diag_every in the spec to record them)")
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 3.8), constrained_layout=True,
                             squeeze=False)
    for ax, (key, title) in zip(axes[0], panels, strict=True):
        for method in data.methods:
            hist = data.histories.get(method, {})
            for k, ls in ((key, "-"), ("diag/sam_edge", "--")) if key == "diag/lambda_max" else ((key, "-"),):
                curves = [c for c in hist.get(k, []) if len(c)]
                if curves:
                    mean = pd.concat(curves).groupby("step")["value"].mean()
                    ax.plot(mean.index, mean.to_numpy(), ls=ls, color=method_color(method),
                            label=method if ls == "-" else None)
        if key == "diag/lambda_over_edge":
            ax.axhline(1.0, color="black", lw=0.8, ls=":")
        ax.set(xlabel="gradient evaluations (count)", ylabel=title, title=title)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    return fig


def missing_edge_note(data: ReportData) -> str:
    """Why some methods show λ_max without a SAM edge: the edge is logged only where it applies."""
    def logged(method: str, key: str) -> bool:
        return any(len(c) for c in data.histories.get(method, {}).get(key, []))

    missing = [m for m in data.methods if logged(m, "diag/lambda_max") and not logged(m, "diag/sam_edge")]
    if not missing:
        return ""
    return (f"No SAM edge for {', '.join(missing)}: the edge (Long & Bartlett) holds only for full-batch, "
            "momentum-free GD or plain SAM on an SGD base, so these runs do not log it.")


def winner_run_count(data: ReportData, method: str) -> int:
    """How many runs the diagnostics of `method` average over."""
    return len(winner_runs(data.trials, data.robust, method, data.stress))
