"""A tracking server that does not answer is told apart from one that refuses, said once, retried on a
clock, and its return is said with what was written."""

from __future__ import annotations

import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from tuner.tracking import outage
from tuner.tracking.outage import Outage, is_transient, quick_requests


def _error_from(uri: str) -> BaseException:
    with quick_requests(uri):
        try:
            MlflowClient(uri).get_experiment_by_name("x")
        except Exception as exc:  # noqa: BLE001 - the test reads what MLflow raised
            return exc
    raise AssertionError("no error")


def test_no_server_is_transient_a_refusal_is_not() -> None:
    assert is_transient(_error_from("http://127.0.0.1:9"))  # nothing listens on the discard port
    refused = MlflowException("API request to endpoint /api/2.0/mlflow/runs/create failed with error code 401 != "
                              "200. Response body: 'You are not authenticated.'")
    assert not is_transient(refused)
    assert is_transient(MlflowException("API request to endpoint /x failed with error code 503 != 200"))


def test_outage_said_once_retried_on_a_clock_and_its_end_said(monkeypatch: pytest.MonkeyPatch) -> None:
    said: list[str] = []
    o = Outage("http://127.0.0.1:9", said.append)

    def fail() -> None:
        raise ConnectionError("Connection refused")
    assert not o.attempt(fail) and o.down and not o.due()
    assert not o.attempt(fail)
    assert len(said) == 1 and "unreachable" in said[0] and "study goes on" in said[0]
    monkeypatch.setattr(outage, "RETRY_SECONDS", 0.0)
    assert o.due()
    assert o.attempt(lambda: None)
    o.succeeded(42)
    assert not o.down and "is back" in said[-1] and "42 buffered" in said[-1]
    with pytest.raises(ValueError):  # a bug is not an outage
        o.attempt(lambda: (_ for _ in ()).throw(ValueError("bad param")))
