"""Robust winners on numbers worked out by hand."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from tuner.results.robust import mean_interval, robust_winners, sensitivity, t_quantile

# two-sided 95 % Student-t critical values from any statistics table
T_TABLE = {1: 12.7062, 2: 4.3027, 3: 3.1824, 4: 2.7764, 9: 2.2622, 29: 2.0452}


@pytest.mark.parametrize(("df", "expected"), sorted(T_TABLE.items()))
def test_t_quantile_matches_table(df: int, expected: float) -> None:
    assert t_quantile(0.975, df) == pytest.approx(expected, abs=1e-4)
    assert t_quantile(0.025, df) == pytest.approx(-expected, abs=1e-4)


def test_t_quantile_tends_to_normal() -> None:
    assert t_quantile(0.975, 1e6) == pytest.approx(1.959964, abs=1e-5)


def test_mean_interval_known_numbers() -> None:
    stat = mean_interval([1.0, 2.0, 3.0])  # mean 2, sample std 1, half-width 4.3027 / sqrt(3)
    assert (stat.mean, stat.std, stat.n) == (2.0, 1.0, 3)
    assert stat.half_width == pytest.approx(4.302653 / math.sqrt(3), rel=1e-6)
    single = mean_interval([0.5, float("nan")])
    assert single.n == 1 and single.mean == 0.5 and math.isnan(single.low)


def _run(method: str, value: float, *, phase: str = "confirm", seed: int = 0, noise: float = 0.0,
         status: str = "completed", hp: dict | None = None) -> dict:
    hp = hp or {"lr": 0.1}
    return {"run_id": f"{method}-{phase}-{seed}-{noise}-{value}", "method": method, "phase": phase,
            "status": status, "seed": float(seed), "trial_id": None, "start_time": 0, "end_time": 0,
            "hparams": hp, "conditions": {"label_noise": noise} if phase == "confirm" else {},
            "config_key": json.dumps(hp, sort_keys=True), "eval/accuracy": value}


def test_lower_bound_beats_lucky_mean() -> None:
    # "wide": mean 0.86 but spread; "tight": mean 0.85, nearly constant -> tight wins on the lower bound
    rows = [_run("wide", v, seed=s) for s, v in enumerate([0.95, 0.80, 0.83])]
    rows += [_run("tight", v, seed=s) for s, v in enumerate([0.851, 0.849, 0.850])]
    result = robust_winners(pd.DataFrame(rows), "eval/accuracy", "maximize")
    assert result.source == "confirm"
    assert list(result.methods["method"]) == ["tight", "wide"]
    tight = result.methods.iloc[0]
    assert tight["mean"] == pytest.approx(0.85)
    assert tight["low"] == pytest.approx(0.85 - 4.302653 * 0.001 / math.sqrt(3), rel=1e-9)
    wide = result.methods.iloc[1]
    std = pd.Series([0.95, 0.80, 0.83]).std()
    assert wide["low"] == pytest.approx(0.86 - 4.302653 * std / math.sqrt(3), rel=1e-6)
    assert list(result.methods["rank"]) == [1, 2]


def test_a_pruned_value_does_not_outrank_a_finished_one() -> None:
    """Without confirmation the search trials rank; a pruned trial's value is from early in training."""
    rows = [_run("sgd", 0.90, phase="search", status="pruned"),  # looked good at the first rung, then stopped
            _run("sam", 0.85, phase="search", hp={"lr": 0.1, "rho": 0.05}),
            _run("sam", 0.95, phase="search", status="pruned", hp={"lr": 0.2, "rho": 0.05})]
    result = robust_winners(pd.DataFrame(rows), "eval/accuracy", "maximize")
    assert result.source == "search"
    assert list(result.methods["method"]) == ["sam", "sgd"]  # sgd has no trial that ran its whole budget
    sam = result.methods.iloc[0]
    assert sam["mean"] == pytest.approx(0.85) and bool(sam["full_budget"])  # its finished config, not the pruned
    assert result.methods.iloc[1]["mean"] == pytest.approx(0.90) and not result.methods.iloc[1]["full_budget"]
    # a method whose only trial diverged still ranks last, after the pruned-only one
    rows.append(_run("asam", float("nan"), phase="search", status="diverged"))
    assert list(robust_winners(pd.DataFrame(rows), "eval/accuracy", "maximize").methods["method"]) == \
        ["sam", "sgd", "asam"]


def test_seed_score_averages_stress_levels_and_minimize_uses_upper_bound() -> None:
    rows = []
    for seed, (clean, noisy) in enumerate([(1.0, 3.0), (2.0, 2.0), (1.5, 3.5)]):  # seed scores 2.0, 2.0, 2.5
        rows += [_run("a", clean, seed=seed, noise=0.0), _run("a", noisy, seed=seed, noise=0.2)]
    rows += [_run("b", v, seed=s) for s, v in enumerate([2.2, 2.2, 2.2])]
    result = robust_winners(pd.DataFrame(rows), "eval/accuracy", "minimize")
    a = result.methods.set_index("method").loc["a"]
    assert a["n"] == 3 and a["mean"] == pytest.approx(13 / 6)
    assert a["high"] == pytest.approx(13 / 6 + 4.302653 * pd.Series([2.0, 2.0, 2.5]).std() / math.sqrt(3))
    assert result.methods.iloc[0]["method"] == "b"  # upper bound 2.2 beats a's 2.93


def test_config_ranking_divergence_and_sensitivity() -> None:
    good, bad = {"lr": 0.1}, {"lr": 1.0}
    rows = [_run("m", v, seed=s, hp=good) for s, v in enumerate([0.7, 0.7, 0.7])]
    rows += [_run("m", 0.9, seed=0, hp=bad), _run("m", 0.95, seed=1, hp=bad, status="diverged")]
    rows += [_run("m", v, phase="search", hp={"lr": 0.1 + i}) for i, v in enumerate([0.80, 0.795, 0.79, 0.5])]
    result = robust_winners(pd.DataFrame(rows), "eval/accuracy", "maximize")
    row = result.methods.iloc[0]
    assert row["hparams"] == good  # the config that diverged on one seed ranks last despite its mean
    assert row["divergence_rate"] == pytest.approx(1 / 9)
    assert row["sensitivity"] == pytest.approx(2 / 4)  # 0.80 and 0.795 are within 1 % of 0.80
    configs = result.configs[result.configs["method"] == "m"]
    assert list(configs["config_rank"]) == [1, 2] and configs.iloc[1]["n_diverged"] == 1


def test_sensitivity_minimize() -> None:
    assert sensitivity([1.0, 1.005, 1.02, float("nan")], "minimize") == pytest.approx(2 / 3)


def test_falls_back_to_search_trials_and_says_so() -> None:
    rows = [_run("m", v, phase="search", hp={"lr": v}) for v in (0.6, 0.8, 0.7)]
    result = robust_winners(pd.DataFrame(rows), "eval/accuracy", "maximize")
    assert result.source == "search" and "no confirmation phase" in result.note
    assert result.methods.iloc[0]["mean"] == 0.8 and result.methods.iloc[0]["hparams"] == {"lr": 0.8}


def test_errored_and_interrupted_runs_are_not_results() -> None:
    rows = [_run("m", v, seed=s) for s, v in enumerate([0.7, 0.72])]
    rows += [_run("m", 0.1, seed=2, status="errored"), _run("m", 0.99, seed=3, status="interrupted")]
    row = robust_winners(pd.DataFrame(rows), "eval/accuracy", "maximize").methods.iloc[0]
    assert row["n"] == 2 and row["mean"] == pytest.approx(0.71) and row["divergence_rate"] == 0.0
