"""`constraints:` in the results: runs outside them cannot win, and the report and summary say so.

On the fake experiment (sam's runs use 131 MB, sgd_ire's 117 MB, sgd's 100 MB; sam takes 2 gradient
evaluations per step), read as if its spec had constraints.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from dashboards.data import collect
from dashboards.report import render_report
from tuner.results.feasible import mark_feasible
from tuner.spec import Constraint
from tuner.tracking.reader import ExperimentStore


def _store(fake_experiment, monkeypatch: pytest.MonkeyPatch, constraints: list[dict]) -> ExperimentStore:
    """The fake experiment as if its spec had `constraints` (the parent run's param, as the tracker logs it)."""
    store = ExperimentStore.open(fake_experiment.name, storage=fake_experiment.storage)
    parent = store.parent().copy()
    parent["params.constraints"] = str(constraints)
    monkeypatch.setattr(store, "parent", lambda: parent)
    return store


def test_runs_outside_the_constraints_cannot_win_and_are_marked(fake_experiment, monkeypatch: pytest.MonkeyPatch,
                                                                tmp_path: Path) -> None:
    # without constraints sam has a winner (tests/dashboards/test_report.py); with them, none
    data = collect(_store(fake_experiment, monkeypatch, [{"metric": "cost/peak_mem_mb", "max": 125}]))
    table = data.table.set_index("method")
    assert math.isnan(table.at["sam", "mean"]) and table.at["sam", "rank"] == len(table)  # every sam run breaks it
    assert table.at["sam", "n_infeasible"] == table.at["sam", "n_runs_total"] > 0
    assert table.at["sgd", "n_infeasible"] == 0 and math.isfinite(table.at["sgd_ire", "mean"])
    html = render_report(data, tmp_path / "report").read_text()
    assert "runs outside the constraints" in html and "cost/peak_mem_mb 131 (needs &lt;= 125)" in html
    assert "n_infeasible" in (tmp_path / "report" / "summary.csv").read_text().splitlines()[0]


def test_overhead_is_the_declared_cost_where_step_is_not_logged() -> None:
    trials = pd.DataFrame([
        {"method": "sgd", "hparams": {"lr": 0.1}, "cost/peak_mem_mb": 10.0},
        {"method": "sam", "hparams": {"lr": 0.1, "rho": 0.05}, "cost/peak_mem_mb": 10.0},
        {"method": "sam_ire", "hparams": {"ire_interval": 4}, "cost/peak_mem_mb": None},
    ])
    marked = mark_feasible(trials, [Constraint("overhead", max=1.5), Constraint("cost/peak_mem_mb", max=20)])
    assert list(marked["feasible"]) == [True, False, False]
    assert marked.at[1, "violated"] == "overhead 2 (needs <= 1.5)"
    assert marked.at[2, "violated"] == "overhead 2.25 (needs <= 1.5); cost/peak_mem_mb missing (needs <= 20)"
