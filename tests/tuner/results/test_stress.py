"""The confirmation's stress levels on a hand-made trials frame."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from tuner.results.stress import stress_condition, stress_profile


def _trials() -> pd.DataFrame:
    rows = [("a", "confirm", "completed", {"label_noise": 0.0, "snr": 1.0}, 0.9),
            ("b", "confirm", "completed", {"label_noise": 0.0, "snr": 2.0}, 0.7),
            ("c", "confirm", "completed", {"label_noise": 0.2, "snr": 1.0}, 0.6),
            ("d", "confirm", "diverged", {"label_noise": 0.2, "snr": 1.0}, 0.1),
            ("e", "search", "completed", {"k_shot": 16}, 0.5)]
    return pd.DataFrame(rows, columns=["run_id", "phase", "status", "conditions", "eval/accuracy"])


def test_label_noise_is_preferred_among_varied_conditions() -> None:
    trials = _trials()
    assert stress_condition(trials) == "label_noise"
    assert stress_condition(trials[trials["run_id"].isin(["a", "b"])]) == "snr"
    assert stress_condition(trials[trials["phase"] == "search"]) is None


def test_profile_is_the_mean_per_level_without_diverged_runs() -> None:
    profile = stress_profile(_trials(), ["a", "b", "c", "d"], "eval/accuracy", "label_noise")
    assert [level for level, _ in profile] == [0.0, 0.2]
    assert profile[0][1].mean == pytest.approx(0.8) and profile[0][1].n == 2
    assert profile[1][1].mean == pytest.approx(0.6) and profile[1][1].n == 1 and math.isnan(profile[1][1].low)
