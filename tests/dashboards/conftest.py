"""One fake experiment per test session (MLflow SQLite migrations take seconds) and its report."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fake_experiment import FakeExperiment, write_fake_experiment  # noqa: E402


@pytest.fixture(scope="session")
def fake_experiment(tmp_path_factory: pytest.TempPathFactory) -> FakeExperiment:
    return write_fake_experiment(tmp_path_factory.mktemp("fake"))


@pytest.fixture(scope="session")
def built_report(fake_experiment: FakeExperiment) -> Path:
    """The report of the fake experiment, logged to its parent run (tags and summary metrics too)."""
    from dashboards.report import build_report
    from tuner.tracking.reader import ExperimentStore

    store = ExperimentStore.open(fake_experiment.name, storage=fake_experiment.storage)
    return build_report(store)
