"""`ray_session`: which Ray a run attaches to. No cluster is started here; `ray.init` is recorded."""

from __future__ import annotations

from typing import Any

import pytest
import ray

from tuner.run.ray_setup import ray_session


@pytest.fixture
def init_calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kwargs: calls.append(kwargs))
    monkeypatch.setattr(ray, "shutdown", lambda: None)
    return calls


def test_without_an_address_a_private_local_ray_starts_even_if_ray_start_left_one(
        init_calls: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> None:
    # Ray's own default (address=None) joins the cluster named in /tmp/ray/ray_current_cluster.
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    with ray_session(None, num_cpus=2):
        pass
    assert len(init_calls) == 1
    assert {k: init_calls[0][k] for k in ("address", "num_cpus", "_node_ip_address")} == {
        "address": "local", "num_cpus": 2, "_node_ip_address": "127.0.0.1"}


@pytest.mark.parametrize("flag, env", [("127.0.0.1:6379", None), (None, "auto"), ("auto", "ignored:1")])
def test_an_address_from_the_flag_or_ray_address_is_joined(
        init_calls: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch, flag: str | None, env: str | None) -> None:
    if env is None:
        monkeypatch.delenv("RAY_ADDRESS", raising=False)
    else:
        monkeypatch.setenv("RAY_ADDRESS", env)
    with ray_session(flag):
        pass
    assert [call["address"] for call in init_calls] == [flag or env]
    assert "num_cpus" not in init_calls[0]


def test_every_slot_of_a_search_starts_at_once(init_calls: list[dict[str, Any]], tmp_path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Ray creates as many pending trials as the search may run at once, so each slot's actor starts
    right away; capped at 1, the second slot waited for the first trial's actor to come up."""
    from e2e import smoke_spec
    from ray.tune.execution.tune_controller import _get_max_pending_trials
    from ray.tune.search import SearchGenerator

    from tuner.run.split import build_search
    from tuner.spec import load_spec

    monkeypatch.delenv("TUNE_MAX_PENDING_TRIALS_PG", raising=False)
    spec = load_spec(smoke_spec(tmp_path, budget={"num_samples": 6, "max_concurrent_trials": 3,
                                                  "trial_grad_evals": 60}))
    with ray_session(None, num_cpus=2):
        pending = _get_max_pending_trials(SearchGenerator(build_search(spec, tmp_path)))
    assert pending == 3
