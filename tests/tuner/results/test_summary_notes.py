"""What the summary says beside its numbers (tuner.results.summary_notes): the ranking rule, the stress
columns and the per-method warnings, on small cases worked out by hand."""

from __future__ import annotations

import pandas as pd
import pytest

from tuner.results.summary_notes import (
    MIN_COMPLETED,
    by_condition,
    condition_label,
    method_warnings,
    queued_winner,
    ranking_rule,
)


def test_the_ranking_rule_names_the_bound_the_goal_ranks_by() -> None:
    up = ranking_rule("eval/accuracy", "maximize", "confirm", with_interval=True, constrained=False)
    down = ranking_rule("eval/loss", "minimize", "confirm", with_interval=True, constrained=True)
    assert "lower end of the 95% t-interval" in up and "highest first" in up and "constraints" not in up
    assert "upper end of the 95% t-interval" in down and "lowest first" in down
    assert down.endswith("only runs that meet the spec's constraints can win")
    search = ranking_rule("eval/loss", "minimize", "search", with_interval=False, constrained=False)
    assert "final eval/loss in the search" in search and "no interval" in search and "t-interval" not in search


@pytest.mark.parametrize(("name", "level", "label"), [("label_noise", 0.0, "clean"),
                                                       ("label_noise", 0.2, "noise 0.2"), ("snr", 10.0, "snr 10"),
                                                       ("input_shift", 0.5, "input shift 0.5")])
def test_condition_labels(name: str, level: float, label: str) -> None:
    assert condition_label(name, level) == label


def test_each_winner_per_stress_level_is_its_mean_over_seeds() -> None:
    rows = [{"run_id": f"r{seed}{noise}", "phase": "confirm", "status": "completed",
             "conditions": {"label_noise": noise}, "eval/accuracy": value}
            for seed, pair in enumerate([(0.9, 0.7), (0.8, 0.6)])
            for noise, value in zip((0.0, 0.2), pair, strict=True)]
    trials = pd.DataFrame(rows)
    table = pd.DataFrame([{"method": "sam", "run_ids": list(trials["run_id"])}])
    titles, cells = by_condition(trials, table, "eval/accuracy")
    assert titles == ["clean", "noise 0.2"]
    assert cells["sam"]["clean"].mean == pytest.approx(0.85) and cells["sam"]["noise 0.2"].mean == pytest.approx(0.65)
    assert by_condition(None, table, "eval/accuracy") == ([], {})


def test_a_queued_winner_is_recognised_up_to_float_noise() -> None:
    enqueue = [{"method": "sam", "lr": 0.1, "rho": 0.05}, {"method": "sgd", "lr": 0.1}]
    assert queued_winner("sam", {"lr": 0.1 + 1e-12, "rho": 0.05}, enqueue) == enqueue[0]
    assert queued_winner("sam", {"lr": 0.1, "rho": 0.06}, enqueue) is None
    assert queued_winner("sgd_ire", {"lr": 0.1}, enqueue) is None


def test_method_warnings_each_for_its_reason() -> None:
    enqueue = [{"method": "sam", "lr": 0.1}]
    queued = pd.Series({"mean": 0.9, "hparams": {"lr": 0.1}, "full_budget": True})
    untuned = method_warnings("sam", queued, 10, enqueue)
    assert len(untuned) == 1 and "queued first by `enqueue`" in untuned[0] and "untuned" in untuned[0]
    pruned = pd.Series({"mean": 0.9, "hparams": {"lr": 0.3}, "full_budget": False})
    few = method_warnings("sam", pruned, MIN_COMPLETED - 1, enqueue)
    assert len(few) == 2 and "only from pruned trials" in few[0] and f"fewer than {MIN_COMPLETED}" in few[1]
    assert method_warnings("sam", pd.Series({"mean": 0.9, "hparams": {"lr": 0.3}}), MIN_COMPLETED, enqueue) == []
    assert method_warnings("sam", None, 0, enqueue) == []  # no row, no completed trial: nothing to warn about
