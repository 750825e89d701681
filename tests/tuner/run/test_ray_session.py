"""`ray_session`: which Ray a run attaches to. No cluster is started here; `ray.init` is recorded."""

from __future__ import annotations

from typing import Any

import pytest
import ray

from tuner.run.ray_parts import ray_session


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
