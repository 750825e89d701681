"""The hyperparameter slices of one method: its search trials' metric against each searched hyperparameter.

Each panel's x axis is the parameter's search distribution (`dashboards.axes`): log for a log-uniform range,
linear otherwise, the choices of a categorical. A pruned trial's value is the metric at pruning, so the y
label says so and the point is hollow (`dashboards.marks`).
"""

from __future__ import annotations

import numpy as np
from matplotlib import pyplot as plt
from matplotlib.figure import Figure

from dashboards.axes import apply_axis, param_axis, positions, searched_in_space
from dashboards.data import ReportData
from dashboards.marks import STATUS_ORDER, scatter_status, status_handles
from dashboards.plot_common import NoData, finite
from tuner.results.importances import searched_params

PANELS_PER_ROW = 3  # wider rows shrink to unreadable type when the page scales them to its width


def value_label(metric: str) -> str:
    """What a search trial's value is: the final value, or the value at pruning."""
    return f"{metric}\n(final; pruned: at pruning)"


def slice_params(data: ReportData, method: str) -> list[str]:
    """The parameters to draw: the stored space's searched ones that the trials hold, else those that varied."""
    search = finite(data.search[data.search["method"] == method], data.metric)
    in_space = searched_in_space(data.space.get(method))
    if in_space is None:
        return searched_params(search)
    held = {k for h in search["hparams"] for k in h}
    return [name for name in in_space if name in held]


def hparam_slices(data: ReportData, method: str) -> Figure:
    """Metric against each searched hyperparameter of one method (filled: completed, hollow: pruned, x: diverged)."""
    search = finite(data.search[data.search["method"] == method], data.metric)
    names = slice_params(data, method)
    if not names:
        raise NoData(f"{method}: no searched hyperparameter with a finite {data.metric}")
    cols = min(len(names), PANELS_PER_ROW)
    rows = -(-len(names) // cols)
    fig, grid = plt.subplots(rows, cols, figsize=(4.4 * cols, 3.6 * rows), constrained_layout=True, squeeze=False)
    axes = grid.ravel()
    for spare in axes[len(names):]:
        spare.set_visible(False)
    style, space = data.style(method), data.space.get(method)
    y = search[data.metric].astype(float).to_numpy()
    status = search["status"].to_numpy()
    for ax, name in zip(axes[:len(names)], names, strict=True):
        values = [h.get(name) for h in search["hparams"]]
        axis = param_axis(space, name, values)
        x = positions(axis, values)
        for outcome in STATUS_ORDER:
            mask = (status == outcome) & np.isfinite(x)
            scatter_status(ax, x[mask], y[mask], style, outcome, gid=f"{method}:{name}:{outcome}")
        apply_axis(ax, axis, values, x)
        ax.set(ylabel=value_label(data.metric), title=f"{method}: {name}")
        ax.grid(alpha=0.3)
    axes[0].legend(handles=status_handles(set(status)), fontsize=7)
    return fig
