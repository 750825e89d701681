"""The report's summary figures. Each function returns a matplotlib Figure or raises NoData saying what is missing.

Every figure draws a method in its own style (`ReportData.style`: colour, marker, line style; the same in
every figure), tells completed from pruned trials apart wherever it shows both (`dashboards.marks`), labels
its axes with units and the experiment's metric name, and has a legend entry only for what it draws.
The hyperparameter slices are `dashboards.slices`, the overhead's spread `dashboards.overhead`.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib import pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from dashboards.data import ReportData
from dashboards.marks import method_handle, scatter_status, status_handles
from dashboards.metric_axis import scale_metric_axis
from dashboards.overhead import spread, trial_ratios
from dashboards.plot_common import NoData, better, finite
from dashboards.slices import hparam_slices
from tuner.names import COMPLETED, DIVERGED, GRAD_EVALS, PRUNED, STEP_TIME_MS, WALL_S
from tuner.results.method_table import pareto_front
from tuner.results.stress import stress_profile, winner_runs
from tuner.value_rules import goal_sign

__all__ = ["NoData", "best_so_far", "diagnostics", "ecdf", "hparam_slices", "missing_edge_note", "pareto",
           "robustness", "winner_run_count"]


def _running_best(values: np.ndarray, completed: np.ndarray, sign: float) -> np.ndarray:
    """Best completed value so far at each trial (nan before the first completed one): pruned values never count."""
    masked = np.where(completed, sign * values, -np.inf)
    best = np.maximum.accumulate(masked)
    return np.where(np.isfinite(best), sign * best, np.nan)


def _progress(ax: Axes, x: np.ndarray, values: np.ndarray, status: np.ndarray, best: np.ndarray, method: str,
              data: ReportData) -> None:
    style = data.style(method)
    done = np.isfinite(best)
    if done.any():
        xs, ys = np.append(x[done], x[-1]), np.append(best[done], best[-1])
        line, = ax.step(xs, ys, where="post", color=style.color, ls=style.linestyle, lw=1.6)
        line.set_gid(f"{method}:best")
    for outcome in (COMPLETED, PRUNED):
        mask = status == outcome
        scatter_status(ax, x[mask], values[mask], style, outcome, gid=f"{method}:{outcome}", size=18)


def best_so_far(data: ReportData) -> Figure:
    """Tuning progress per method: the best completed trial so far against the compute and wall time spent on
    all its trials; pruned trials (hollow, their value at pruning) cost compute but never count as a best."""
    search = finite(data.search[data.search["status"] != DIVERGED], data.metric)
    if not len(search):
        raise NoData(f"no search trials with a finite {data.metric}")
    has_wall = WALL_S in search
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4), constrained_layout=True)
    sign = goal_sign(data.goal)
    for method, group in data.search[data.search["method"].isin(search["method"])].groupby("method"):
        # every trial's cost counts (a diverged or errored one spent it too); only finite values are drawn
        group = group.sort_values("start_time", kind="stable")
        keep = group.index.isin(search.index)
        values = group[data.metric].astype(float).to_numpy()[keep]
        status = group["status"].to_numpy()[keep]
        best = _running_best(values, status == COMPLETED, sign)
        evals = np.cumsum(group[GRAD_EVALS].fillna(0).to_numpy()) if GRAD_EVALS in group else \
            np.arange(1, len(group) + 1)
        _progress(axes[0], evals[keep], values, status, best, str(method), data)
        if has_wall:
            wall = np.cumsum(group[WALL_S].fillna(0).to_numpy())[keep]
            _progress(axes[1], wall, values, status, best, str(method), data)
    ylabel = f"best completed {data.metric} so far"
    axes[0].set(xlabel="cumulative gradient evaluations spent tuning (count)", ylabel=ylabel,
                title="Best so far vs compute")
    axes[1].set(xlabel="cumulative trial wall time (s)", ylabel=ylabel,
                title="Best so far vs wall time" if has_wall else "no cost/wall_s logged")
    searched = [m for m in data.styles if (search["method"] == m).any()]
    handles = [method_handle(m, data.style(m)) for m in searched] + status_handles(set(search["status"]))
    for ax in axes[:2]:
        if ax.has_data():
            ax.legend(handles=handles, fontsize=7)
    for method in data.methods:
        curves = [c for c in data.histories.get(method, {}).get(data.metric, []) if len(c)]
        if not curves:
            continue
        merged = pd.concat(curves).groupby("step")["value"].mean()
        style = data.style(method)
        axes[2].plot(merged.index, merged.to_numpy(), color=style.color, ls=style.linestyle,
                     label=f"{method} (n={len(curves)})", gid=f"{method}:curve")
    axes[2].set(xlabel="gradient evaluations (count)", ylabel=data.metric,
                title="Winning config's training curve (mean over its runs)")
    for ax in axes:
        scale_metric_axis(ax)
        ax.grid(alpha=0.3)
    if axes[2].get_legend_handles_labels()[0]:
        axes[2].legend(fontsize=8)
    return fig


def pareto(data: ReportData) -> Figure:
    """Robust best metric vs step-time overhead: the front holds the methods nothing beats on both. The
    horizontal bars are the overhead's spread across trials (interquartile range): load shows up there."""
    table = data.table[np.isfinite(data.table["overhead"].astype(float)) &
                       np.isfinite(data.table["mean"].astype(float))]
    if not len(table):
        raise NoData(f"needs both {data.metric} and cost/step_time_ms for at least one method")
    fig, ax = plt.subplots(figsize=(7.5, 5), constrained_layout=True)
    ref_time = dict(zip(data.table["method"], data.table["step_time_ms"] / data.table["overhead"], strict=True))
    trials = finite(finite(data.search[data.search["status"] != DIVERGED], data.metric), STEP_TIME_MS)
    drawn: set[str] = set()
    for method, group in trials.groupby("method"):
        if method not in ref_time or not math.isfinite(ref_time[method]):
            continue
        style = data.style(str(method))
        ok = group["feasible"].astype(bool) if "feasible" in group else pd.Series(True, index=group.index)
        x = group[STEP_TIME_MS].astype(float) / ref_time[method]
        for outcome in (COMPLETED, PRUNED):
            mask = ok & (group["status"] == outcome)
            if scatter_status(ax, x[mask], group[data.metric][mask], style, outcome, gid=f"{method}:{outcome}",
                              size=16, alpha=0.45):
                drawn.add(outcome)
        off = scatter_status(ax, x[~ok], group[data.metric][~ok], style, DIVERGED, gid=f"{method}:infeasible",
                             size=22, alpha=0.6)  # breaks a spec constraint (drawn as a cross)
        if off is not None:
            drawn.add("infeasible")
    ratios = trial_ratios(data)
    handles: list = []
    for _, row in table.iterrows():
        low, high = row["low"], row["high"]
        yerr = [[row["mean"] - low], [high - row["mean"]]] if math.isfinite(low) else None
        q1, q3 = spread(ratios, row["method"])
        xerr = [[row["overhead"] - q1], [q3 - row["overhead"]]] if math.isfinite(q1) else None
        style = data.style(row["method"])
        label = f"{row['method']} ({row['overhead']:.2f}×" + (f", IQR {q1:.2f}–{q3:.2f})" if xerr else ")")
        handles.append(ax.errorbar(row["overhead"], row["mean"], yerr=yerr, xerr=xerr, fmt=style.marker, ms=8,
                                   capsize=4, color=style.color, gid=f"{row['method']}:winner", label=label))
    front = pareto_front(data.table, data.goal)
    if len(front) > 1:
        bound = "lower" if data.goal == "maximize" else "upper"
        handles += ax.step(*zip(*front, strict=True), where="post", color="black", ls="--", lw=1,
                           label=f"Pareto front (by the {bound} CI bound)")
    handles += status_handles(drawn & {COMPLETED, PRUNED})
    if "infeasible" in drawn:
        handles.append(Line2D([], [], ls="none", marker="x", color="#555555",
                              label="search trial outside the constraints"))
    ax.set(xlabel=f"step time relative to reference (×); reference: {table['overhead_reference'].iloc[0]}",
           ylabel=f"robust {data.metric} (mean, 95% CI)", title=f"Metric vs compute overhead ({better(data.goal)})")
    scale_metric_axis(ax)
    ax.grid(alpha=0.3)
    ax.legend(handles=handles, fontsize=7)
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
        style = data.style(method)
        ax.errorbar(np.asarray(xs) + off * step * 0.2, means, yerr=[lo, hi], marker=style.marker, ls=style.linestyle,
                    capsize=4, color=style.color, gid=f"{method}:profile",
                    label=f"{method} (seeds {', '.join(map(str, row['seeds']))})")
    label = {"label_noise": "label noise (fraction of flipped labels)", "snr": "signal-to-noise ratio"}
    ax.set(xlabel=label.get(data.stress, data.stress), ylabel=f"{data.metric} (mean over seeds, 95% CI)",
           title="Robustness profile of each method's winning config")
    scale_metric_axis(ax)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def ecdf(data: ReportData) -> Figure:
    """Distribution of the final metric over completed search trials: a curve hugging the best means easy
    tuning. Pruned trials stopped early, so they are not in the curve: a rug below it shows their values."""
    search = finite(data.search, data.metric)
    if not len(search):
        raise NoData(f"no search trials with a finite {data.metric}")
    fig, ax = plt.subplots(figsize=(7.5, 5), constrained_layout=True)
    methods = [m for m in data.styles if (search["method"] == m).any()]
    handles: list[Line2D] = []  # methods with no completed trial: only their pruned rug is drawn
    for i, method in enumerate(methods):
        group = search[search["method"] == method]
        style = data.style(method)
        done = np.sort(group.loc[group["status"] == COMPLETED, data.metric].astype(float).to_numpy())
        pruned = group.loc[group["status"] == PRUNED, data.metric].astype(float).to_numpy()
        label = f"{method}: {len(done) or 'none'} completed" + (f", {len(pruned)} pruned" if len(pruned) else "")
        if len(done):
            frac = np.arange(0, len(done) + 1) / len(done)
            line, = ax.step(np.insert(done, 0, done[0]), frac, where="post", color=style.color, ls=style.linestyle,
                            label=label)
            line.set_gid(f"{method}:ecdf")
        else:
            handles.append(method_handle(method, style, label))
        scatter_status(ax, pruned, np.full(len(pruned), -0.04 - 0.035 * i), style, PRUNED, gid=f"{method}:pruned",
                       size=18)
    ax.set_ylim(-0.06 - 0.035 * len(methods), 1.04)
    ax.set_yticks(np.linspace(0, 1, 6), ["0", "0.2", "0.4", "0.6", "0.8", "1"])
    ax.set(xlabel=f"final {data.metric} of a completed search trial (below 0: pruned ones, at pruning)",
           ylabel="fraction of completed trials ≤ x",
           title=f"ECDF of search trials ({better(data.goal)})")
    scale_metric_axis(ax, "x")
    ax.grid(alpha=0.3)
    handles += status_handles(set(search["status"]) & {PRUNED})
    ax.legend(handles=ax.get_legend_handles_labels()[0] + handles, fontsize=8)
    return fig


_DIAG_PANELS = (
    ("diag/balancedness_mean", "balancedness mean |‖x‖²−‖y‖²|"),
    ("diag/lambda_max", "λ_max"),
    ("diag/lambda_over_edge", "λ_max / SAM edge (ratio)"),
    ("diag/hessian_trace", "Hessian trace Tr(H)"),
)
EDGE_KEY = "diag/sam_edge"


def _mean_curve(data: ReportData, method: str, key: str) -> pd.Series | None:
    curves = [c for c in data.histories.get(method, {}).get(key, []) if len(c)]
    return pd.concat(curves).groupby("step")["value"].mean() if curves else None


def diagnostics(data: ReportData) -> Figure:
    """Winners' diagnostics over training where they were logged (mean over the winner's runs). The SAM
    edge is drawn dashed on the λ_max panel only where it was logged, and only then named in the legend."""
    panels = [(k, t) for k, t in _DIAG_PANELS if any(h.get(k) for h in data.histories.values())]
    if not panels:
        raise NoData("no diag/* metrics were logged (set diag_every in the spec to record them)")
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 3.8), constrained_layout=True,
                             squeeze=False)
    for ax, (key, title) in zip(axes[0], panels, strict=True):
        handles, edges = [], False
        for method in data.methods:
            style = data.style(method)
            mean = _mean_curve(data, method, key)
            if mean is not None:
                ax.plot(mean.index, mean.to_numpy(), color=style.color, gid=f"{method}:{key}")
                handles.append(Line2D([], [], color=style.color, label=method))
            edge = _mean_curve(data, method, EDGE_KEY) if key == "diag/lambda_max" else None
            if edge is not None:
                ax.plot(edge.index, edge.to_numpy(), ls="--", color=style.color, gid=f"{method}:{EDGE_KEY}")
                edges = True
        if edges:
            title = "λ_max (solid) and SAM edge 2/η (dashed)"
            handles += [Line2D([], [], color="#555555", label="λ_max"),
                        Line2D([], [], color="#555555", ls="--", label="SAM edge")]
        if key == "diag/lambda_over_edge":
            ax.axhline(1.0, color="black", lw=0.8, ls=":")
        ax.set(xlabel="gradient evaluations (count)", ylabel=title.split(" (")[0], title=title)
        ax.grid(alpha=0.3)
        if handles:
            ax.legend(handles=handles, fontsize=8)
    return fig


def missing_edge_note(data: ReportData) -> str:
    """Why some methods show λ_max without a SAM edge: the edge is logged only where it applies."""
    def logged(method: str, key: str) -> bool:
        return any(len(c) for c in data.histories.get(method, {}).get(key, []))

    missing = [m for m in data.methods if logged(m, "diag/lambda_max") and not logged(m, EDGE_KEY)]
    if not missing:
        return ""
    return (f"No SAM edge for {', '.join(missing)}: the edge (Long & Bartlett) holds only for full-batch, "
            "momentum-free GD or plain SAM on an SGD base, so these runs do not log it.")


def winner_run_count(data: ReportData, method: str) -> int:
    """How many runs the diagnostics of `method` average over."""
    return len(winner_runs(data.trials, data.robust, method, data.stress))
