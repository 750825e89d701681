"""Importances are computed on the distributions the sampler drew from (the stored space), never on a scale
guessed from the sampled values (tuner.results.importances)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import optuna
import pandas as pd
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from tuner.results import importances
from tuner.results.importances import param_importances
from tuner.space import Param

# lr was searched log-uniform on [0.1, 1] (one decade: its values look evenly spread), wd linear on [1e-4, 1]
# (its values span four decades): a guess from the values would take lr as linear and wd as log.
SPACE = {"lr": {"type": "float", "low": 0.1, "high": 1.0, "log": True},
         "wd": {"type": "float", "low": 1e-4, "high": 1.0},
         "width": {"type": "categorical", "values": [1, 2, 4, 8]},
         "layers": {"type": "int", "low": 1, "high": 6},
         "seed_offset": {"value": 0}}


def _trials(n: int = 30, extra: dict[str, Any] | None = None) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    rows = []
    for i in range(n):
        hp = {"lr": float(rng.uniform(0.1, 1.0)), "wd": 10 ** float(rng.uniform(-4, 0)),
              "width": [1, 2, 4, 8][i % 4], "layers": int(rng.integers(1, 7))}
        rows.append({"phase": "search", "method": "sam", "status": "completed", "hparams": {**hp, **(extra or {})},
                     "m": -abs(math.log10(hp["lr"]) + 0.7) - 0.3 * hp["wd"] + 0.01 * hp["layers"]})
    return pd.DataFrame(rows)


@pytest.fixture
def studies(monkeypatch: pytest.MonkeyPatch) -> list[optuna.Study]:
    """The studies param_importances hands to Optuna, kept for inspection."""
    seen: list[optuna.Study] = []
    real = optuna.importance.get_param_importances

    def keep(study: optuna.Study, **kwargs: Any) -> dict[str, float]:
        seen.append(study)
        return real(study, **kwargs)

    monkeypatch.setattr(importances.optuna.importance, "get_param_importances", keep)
    return seen


def test_the_study_holds_the_declared_distributions_not_guessed_ones(studies: list[optuna.Study]) -> None:
    imp, _ = param_importances(_trials(), "m", "maximize", "sam", SPACE)
    assert set(imp) == {"lr", "wd", "width", "layers"}
    dists = studies[0].trials[0].distributions
    for name in ("lr", "wd", "width", "layers"):
        assert dists[name] == Param.from_dict(name, SPACE[name]).distribution()
    assert dists["lr"] == FloatDistribution(0.1, 1.0, log=True)
    assert dists["wd"] == FloatDistribution(1e-4, 1.0, log=False)
    assert isinstance(dists["width"], CategoricalDistribution)  # numbers, but chosen from a list
    assert dists["layers"] == IntDistribution(1, 6)


def test_importances_follow_the_declared_scale() -> None:
    """The same trials under the declared scale and under the swapped one: the result is the declared one's."""
    trials = _trials()
    np.random.seed(0)  # Optuna's fANOVA forest draws from numpy's global state
    got, note = param_importances(trials, "m", "maximize", "sam", SPACE)

    study = optuna.create_study(direction="maximize")
    declared = {k: Param.from_dict(k, SPACE[k]).distribution() for k in ("lr", "wd", "width", "layers")}
    for hp, value in zip(trials["hparams"], trials["m"], strict=True):
        study.add_trial(optuna.trial.create_trial(params={k: hp[k] for k in declared}, distributions=declared,
                                                  value=value))
    np.random.seed(0)
    expected = optuna.importance.get_param_importances(study)
    assert got == pytest.approx(expected) and "over 30 completed" in note

    swapped = {**SPACE, "lr": {**SPACE["lr"], "log": False}, "wd": {**SPACE["wd"], "log": True}}
    np.random.seed(0)
    other, _ = param_importances(trials, "m", "maximize", "sam", swapped)
    assert other != pytest.approx(got)


def test_a_value_outside_the_range_widens_it_on_the_same_scale(studies: list[optuna.Study]) -> None:
    trials = _trials()
    trials.at[0, "hparams"] = {**trials.at[0, "hparams"], "lr": 3.0, "width": 16}  # an enqueued default
    param_importances(trials, "m", "maximize", "sam", SPACE)
    dists = studies[0].trials[0].distributions
    assert dists["lr"] == FloatDistribution(0.1, 3.0, log=True)
    assert set(dists["width"].choices) == {1, 2, 4, 8, 16}


def test_a_parameter_without_a_stored_distribution_is_left_out_and_named() -> None:
    trials = _trials()
    trials["hparams"] = [{**hp, "mystery": i * 0.5} for i, hp in enumerate(trials["hparams"])]
    imp, note = param_importances(trials, "m", "maximize", "sam", SPACE)
    assert "mystery" not in imp and set(imp) == {"lr", "wd", "width", "layers"}
    assert "left out, no stored search distribution: mystery" in note
    imp, note = param_importances(trials, "m", "maximize", "sam", None)
    assert imp == {} and note.startswith("not computed: the experiment stored no search distribution")
