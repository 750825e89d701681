"""Ctrl-C while the last trials run: Ray ends `fit()` normally and its stopped trials look terminated."""

from __future__ import annotations

import logging

import pytest
import ray

from tuner.run.experiment import Experiment
from tuner.run.ray_setup import RAY_STOP, ray_session


class _Results:
    """What `fit()` returns when every trial ended (Ray marks the trials it stopped as terminated)."""

    def __init__(self, n: int) -> None:
        self.n, self.num_terminated, self.num_errors = n, n, 0

    def __len__(self) -> int:
        return self.n


def test_rays_stop_signal_marks_the_run_interrupted_and_hides_its_advice(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(ray, "is_initialized", lambda: True)  # a session someone else owns: only logging set-up
    with ray_session(None):
        pass
    monkeypatch.setattr(RAY_STOP, "stopped", False)
    assert not Experiment._interrupted(_Results(12))  # all twelve ended: done
    assert not Experiment._interrupted(_Results(7))  # fewer than num_samples, all ended: the time budget, an end
    logger = logging.getLogger("ray.tune.tune")
    with caplog.at_level(logging.WARNING, logger="ray.tune.tune"):
        logger.warning("Stop signal received (e.g. via SIGINT/Ctrl+C), ending Ray Tune run.")
        logger.warning("Experiment has been interrupted, but the most recent state was saved.\n"
                       'Resume experiment with: Tuner.restore(path="/x", trainable=...)')
        logger.warning("an unrelated warning")
    assert [r.getMessage() for r in caplog.records] == ["an unrelated warning"]
    assert Experiment._interrupted(_Results(12))  # the same results, but Ray said it stopped them
