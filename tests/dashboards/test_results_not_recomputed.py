"""The report shows what `tuner.results` computes and computes none of it again.

Its winners and table are `tuner.results.winners.winners`' (the ones `run` prints and tags), its Pareto
front is `tuner.results.method_table.pareto_front`, and no dashboards module calls the steps of those
computations itself (a copy of the rule would drift from the one `run` uses).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pandas as pd

from dashboards import plots
from dashboards.data import collect
from tuner.results.method_table import pareto_front
from tuner.results.winners import winners
from tuner.tracking.reader import ExperimentStore

DASHBOARDS = Path(__file__).resolve().parents[2] / "dashboards"
# the computation steps behind the winners and the table: only tuner.results calls them
STEPS = {"robust_winners", "method_table", "overheads", "mark_feasible", "constraint_values", "sensitivity",
         "mean_interval", "t_quantile", "pessimistic_value", "_rank_key", "_config_rows"}


def test_report_winners_are_the_results_winners(fake_experiment) -> None:
    store = ExperimentStore.open(fake_experiment.name, storage=fake_experiment.storage)
    data = collect(store)
    table, robust, trials = winners(ExperimentStore.open(fake_experiment.name, storage=fake_experiment.storage))
    pd.testing.assert_frame_equal(data.table, table)
    pd.testing.assert_frame_equal(data.robust.methods, robust.methods)
    assert (data.metric, data.goal, data.robust.source) == (robust.metric, robust.goal, robust.source)
    assert list(data.trials["run_id"]) == list(trials["run_id"])


def test_the_drawn_front_is_the_results_front(fake_experiment) -> None:
    data = collect(ExperimentStore.open(fake_experiment.name, storage=fake_experiment.storage))
    fig = plots.pareto(data)
    lines = [line for line in fig.axes[0].lines if line.get_label().startswith("Pareto front")]
    front = pareto_front(data.table, data.goal)
    assert len(front) > 1 and len(lines) == 1
    assert list(zip(lines[0].get_xdata(), lines[0].get_ydata(), strict=True)) == front


def test_no_dashboards_module_calls_a_computation_step() -> None:
    called = {}
    for path in sorted(DASHBOARDS.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                names = {a.name for a in node.names} & STEPS
            elif isinstance(node, ast.Attribute):
                names = {node.attr} & STEPS
            else:
                continue
            if names:
                called.setdefault(path.name, set()).update(names)
    assert called == {}
