"""The report shows what `tuner.results` computes and computes none of it again.

Its winners and table are what an independent computation from the raw runs gives (the rule `run` prints
and tags, `tuner.results.winners.winners`), its Pareto front is `tuner.results.method_table.pareto_front`,
and no dashboards module calls the steps of those computations itself (a copy of the rule would drift from
the one `run` uses).
"""

from __future__ import annotations

import ast
import math
import statistics
from pathlib import Path

import pytest
from fake_experiment import CONFIRM, METRIC

from dashboards import plots
from dashboards.data import collect
from tuner.results.method_table import pareto_front
from tuner.tracking.reader import ExperimentStore

T975_DF2 = 4.302652729911275  # Student's t, 97.5th percentile, 2 degrees of freedom (3 seeds), from tables
DASHBOARDS = Path(__file__).resolve().parents[2] / "dashboards"
# the computation steps behind the winners and the table: only tuner.results calls them
STEPS = {"robust_winners", "method_table", "overheads", "mark_feasible", "constraint_values", "sensitivity",
         "mean_interval", "t_quantile", "pessimistic_value", "_rank_key", "_config_rows"}


def test_report_winners_match_an_independent_computation_from_the_raw_runs(fake_experiment) -> None:
    """The report's table, recomputed here by hand from the confirmation values the fake runs hold: each
    seed's score is its mean over the noise levels, a method's interval the 95% t-interval over its seeds,
    and methods rank by the interval's lower end (maximize). A drift in what the report shows would fail."""
    data = collect(ExperimentStore.open(fake_experiment.name, storage=fake_experiment.storage))
    expected = {}
    for method, by_seed in CONFIRM.items():
        scores = [statistics.mean(values) for values in by_seed.values()]
        mean, half = statistics.mean(scores), T975_DF2 * statistics.stdev(scores) / math.sqrt(len(scores))
        expected[method] = (mean, mean - half, mean + half)
    assert (data.metric, data.goal, data.robust.source) == (METRIC, "maximize", "confirm")
    assert list(data.table["method"]) == sorted(expected, key=lambda m: -expected[m][1]) == ["sam", "sgd", "sgd_ire"]
    for _, row in data.table.iterrows():
        assert (row["mean"], row["low"], row["high"]) == pytest.approx(expected[row["method"]])
        assert set(fake_experiment.confirm_ids[row["method"]]) <= set(row["run_ids"])
    written = [rid for ids in (fake_experiment.search_ids, fake_experiment.errored_ids, fake_experiment.confirm_ids)
               for rids in ids.values() for rid in rids]
    assert sorted(data.trials["run_id"]) == sorted(written)


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
