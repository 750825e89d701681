"""The metric's axis is logarithmic when its values span more than two decades (a loss near 1e-8 is not a flat
line at 0), symmetric-logarithmic when one of them is exactly 0, and linear otherwise (dashboards.metric_axis)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from matplotlib import pyplot as plt

from dashboards import plots
from dashboards.data import ReportData, collect
from dashboards.metric_axis import LINEAR, LOG, SYMLOG, drawn_values, metric_scale, scale_metric_axis
from tuner.tracking.reader import ExperimentStore


@pytest.mark.parametrize(("values", "expected"), [
    ([0.71, 0.93, 0.88], (LINEAR, None)),  # accuracies
    ([1.0, 1e-8, 3e-4], (LOG, None)),  # a loss falling over eight decades
    ([1.0, 1e-8, 0.0], (SYMLOG, 1e-8)),  # one trial reached the minimum exactly
    ([0.01, 1.0], (LINEAR, None)),  # exactly two decades: still linear
    ([0.0099, 1.0], (LOG, None)),  # just over
    ([-1.0, 1e-8, 1.0], (LINEAR, None)),  # a negative value: a log axis cannot hold it
    ([0.0, 0.0, 1e-3], (LINEAR, None)),  # one positive value: nothing to span
    ([np.nan, np.inf, 1e-6, 1.0], (LOG, None)),  # what is not finite is not drawn
])
def test_the_scale_rule(values: list[float], expected: tuple[str, float | None]) -> None:
    assert metric_scale(np.asarray(values)) == expected


def test_every_kind_of_mark_counts_and_the_label_says_the_scale() -> None:
    fig, ax = plt.subplots()
    ax.scatter([1, 2], [0.5, 0.6])
    ax.errorbar([3], [0.55], yerr=[[0.05], [0.05]])
    ax.set_ylabel("eval/loss")
    assert scale_metric_axis(ax) == LINEAR and ax.get_yscale() == "linear" and ax.get_ylabel() == "eval/loss"
    ax.errorbar([4], [1e-6], yerr=[[0.0], [1e-6]])  # an error bar alone brings the span down to 1e-6
    assert sorted(drawn_values(ax))[0] == pytest.approx(1e-6)
    assert scale_metric_axis(ax) == LOG and ax.get_yscale() == "log" and ax.get_ylabel() == "eval/loss (log scale)"
    fig, ax = plt.subplots()
    ax.step([0, 1, 2], [1.0, 1e-9, 0.0])
    ax.set_xlabel("eval/loss")
    ax.set_ylabel("fraction")
    assert scale_metric_axis(ax, "y") == SYMLOG and ax.get_yscale() == "symlog"
    assert ax.get_ylim()[0] == 0.0 and ax.get_ylabel() == "fraction (log scale with 0)"
    ticks = list(ax.get_yticks())
    assert ticks[0] == 0.0 and ticks[-1] == ax.get_ylim()[1] == 10.0  # 1.0 lies below the top, not on the frame
    assert all(t > 1e-9 for t in ticks[1:])  # the 0 has its own tick, apart from the smallest value's decade
    assert scale_metric_axis(ax, "x") == LINEAR  # the other axis is read on its own


@pytest.fixture(scope="module")
def data(fake_experiment) -> ReportData:
    return collect(ExperimentStore.open(fake_experiment.name, storage=fake_experiment.storage))


def test_the_report_figures_follow_the_rule(data: ReportData) -> None:
    metric = data.metric
    assert plots.best_so_far(data).axes[0].get_yscale() == "linear"  # the fake experiment's accuracies
    assert plots.ecdf(data).axes[0].get_xscale() == "linear"
    trials = data.trials.copy()
    trials[metric] = 10.0 ** (-12 * trials[metric].astype(float))  # the same trials as a loss over decades
    lossy = replace(data, trials=trials)
    best, ecdf = plots.best_so_far(lossy).axes[0], plots.ecdf(lossy).axes[0]
    assert best.get_yscale() == "log" and best.get_ylabel().endswith("(log scale)")
    assert ecdf.get_xscale() == "log" and ecdf.get_yscale() == "linear"  # the fractions stay linear
    search = trials.index[(trials["phase"] == "search") & (trials["status"] == "completed")]
    trials.loc[search[0], metric] = 0.0  # a trial at the minimum: kept on the axis
    best = plots.best_so_far(replace(data, trials=trials)).axes[0]
    assert best.get_yscale() == "symlog" and best.get_ylim()[0] == 0.0
    plt.close("all")
