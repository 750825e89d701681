"""Params read back from MLflow keep a spec's words: `preconditioner: none` is the method's choice "none",
not Python's None (which the method refuses, so the winner's cost and its export broke on it)."""

from __future__ import annotations

from methods import build_optimizer, get_method
from tuner.hparams import method_hparams
from tuner.tracking.reader import parse_param


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
