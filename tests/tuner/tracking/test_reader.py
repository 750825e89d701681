"""The MLflow read side (tuner.tracking.reader): one typed row per trial run, and params read back keep a spec's
words: `preconditioner: none` is the method's choice "none", not Python's None (which the method refuses, so
the winner's cost and its export broke on it)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from fake_experiment import ERRORED, METRIC, NOISE, SEARCH, write_fake_experiment  # tests/ is on sys.path (pyproject)

from methods import build_optimizer, get_method
from tuner.hparams import method_hparams
from tuner.results.method_table import errors_by_method
from tuner.tracking.reader import ExperimentStore, parse_param


def test_trials_are_the_child_runs_typed(tmp_path: Path) -> None:
    fake = write_fake_experiment(tmp_path)
    store = ExperimentStore.open(fake.name, storage=fake.storage)
    trials = store.trials()
    assert store.objective() == (METRIC, "maximize")
    search = trials[(trials["phase"] == "search") & (trials["status"] != "errored")]
    for method, rows in SEARCH.items():
        mine = search[search["method"] == method].set_index("run_id").loc[fake.search_ids[method]]
        assert list(mine["status"]) == [status for _, _, status in rows]
        assert list(mine["hparams"]) == [hp for hp, _, _ in rows]  # typed: floats, bools, ints, strings
        assert list(mine[METRIC]) == pytest.approx([final for _, final, _ in rows])
    confirm = trials[trials["phase"] == "confirm"]
    assert len(confirm) == sum(len(ids) for ids in fake.confirm_ids.values())
    assert {c["label_noise"] for c in confirm["conditions"]} == set(NOISE)
    assert not any(math.isnan(s) for s in confirm["seed"])
    errors = errors_by_method(trials).set_index("method")
    assert errors.loc["sam", "n_errored"] == 2 and errors.loc["sam", "first_error"] == ERRORED["sam"][0][1]


def test_a_spec_word_none_stays_a_string_and_mlflows_none_is_none() -> None:
    assert parse_param("none") == "none"
    assert parse_param("None") is None and parse_param("null") is None
    assert parse_param("0.05") == 0.05 and parse_param("True") is True


def test_a_winner_with_preconditioner_none_builds_and_declares_its_cost() -> None:
    import torch

    stored = {"lr": "0.015", "rho": "0.0111", "preconditioner": "none"}  # as MLflow holds them
    hparams = method_hparams("sam", {k: parse_param(v) for k, v in stored.items()})
    assert get_method("sam").grad_evals_per_step(**hparams) == 2
    model = torch.nn.Linear(3, 1)
    build_optimizer(model.parameters(), "sam", **hparams)
