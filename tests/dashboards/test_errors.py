"""Errored trials are visible: the tracker tags the run with its error line, the store reads it back,
the report's per-method table shows the count and the first error line."""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

from fake_experiment import ERRORED, FakeExperiment
from mlflow.tracking import MlflowClient
from ray.exceptions import RayTaskError

from tuner.results.method_table import errors_by_method
from tuner.run.trial_errors import error_line
from tuner.tracking.reader import ExperimentStore
from tuner.tracking.tags import ERROR_TAG
from tuner.tracking.ui import EXPERIMENT_KIND_TAG, MODEL_TRAINING, RUNS_VIEW, VIEW_TAG_PREFIX
from tuner.tracking.writer import MlflowTracker


class ConfigError(ValueError):
    pass


class FakeTrial:
    """What the tracker reads of a Ray Trial (ray.tune.experiment.Trial, Ray 2.60)."""

    def __init__(self, trial_id: str, pickled: BaseException | None, text: str | None = None) -> None:
        self.trial_id, self.config, self.last_result, self.status = trial_id, {"method": "sam", "lr": 0.1}, {}, "ERROR"
        self._pickled, self._text = pickled, text

    def get_pickled_error(self) -> BaseException | None:
        return self._pickled

    def get_error(self) -> str | None:
        return self._text


def _task_error(message: str) -> RayTaskError:
    return RayTaskError("ImplicitFunc.train", f"Traceback (most recent call last):\n  File \"t.py\"\n{message}",
                        ConfigError(message.split(": ", 1)[1]))


def test_error_line_from_pickled_error_then_text() -> None:
    cause = "ConfigError: schedule 'cosine' needs total_steps (the schedule's horizon)"
    assert error_line(FakeTrial("a", _task_error(cause + "\nsecond line"))) == cause
    text = "Failure # 1 (occurred at 2026-01-01)\nTraceback (most recent call last):\n  File x\nValueError: bad lr\n"
    assert error_line(FakeTrial("b", None, text)) == "ValueError: bad lr"
    assert error_line(FakeTrial("c", None, None)) == "error (Ray recorded no message)"
    assert len(error_line(FakeTrial("d", RuntimeError("x" * 2000)))) == 500


def test_tracker_tags_the_errored_run_and_a_rerun_clears_it(fake_experiment: FakeExperiment, tmp_path: Path) -> None:
    spec: dict[str, Any] = {"name": "tracker-errors", "metric": {"name": "eval/loss", "goal": "minimize"}}
    tracker = MlflowTracker(tracking_uri=fake_experiment.tracking_uri, name="tracker-errors", spec=spec,
                            experiment_dir=str(tmp_path), error_line=error_line)
    trial = FakeTrial("t1", _task_error("ConfigError: schedule 'linear' needs total_steps"))
    tracker.setup()
    tracker.on_trial_start(0, [trial], trial)
    tracker.on_trial_error(0, [trial], trial)
    client = MlflowClient(fake_experiment.tracking_uri)
    exp = client.get_experiment_by_name("sharptune/tracker-errors")
    (run,) = client.search_runs([exp.experiment_id], "tags.`sharptune.role` = 'trial'")
    assert run.info.status == "FAILED" and run.data.tags["sharptune.status"] == "errored"
    assert run.data.tags[ERROR_TAG] == "ConfigError: schedule 'linear' needs total_steps"
    assert exp.tags[EXPERIMENT_KIND_TAG] == MODEL_TRAINING and VIEW_TAG_PREFIX + RUNS_VIEW in exp.tags
    # the same trial running again (resume) continues the run: its old ending and error no longer hold
    MlflowTracker(tracking_uri=fake_experiment.tracking_uri, name="tracker-errors", spec=spec,
                  experiment_dir=str(tmp_path), error_line=error_line).on_trial_start(0, [trial], trial)
    tags = client.get_run(run.info.run_id).data.tags
    assert ERROR_TAG not in tags and "sharptune.status" not in tags
    trials = ExperimentStore.open("tracker-errors", tracking_uri=fake_experiment.tracking_uri).trials()
    assert trials["error"].isna().all()


def test_store_reads_error_lines(fake_experiment: FakeExperiment) -> None:
    trials = ExperimentStore.open(fake_experiment.name, storage=fake_experiment.storage).trials()
    errored = trials[trials["status"] == "errored"]
    assert set(errored["run_id"]) == set(fake_experiment.errored_ids["sam"])
    assert list(errored["error"]) == [line for _, line in ERRORED["sam"]]
    assert trials.loc[trials["status"] != "errored", "error"].isna().all()
    summary = errors_by_method(trials)
    assert summary.to_dict("records") == [{"method": "sam", "n_errored": 2, "first_error": ERRORED["sam"][0][1]}]


def test_report_table_shows_errored_count_and_first_error(built_report: Path) -> None:
    body = re.search(r'<section id="summary" data-status="ok">(.*?)</section>', built_report.read_text(),
                     flags=re.S).group(1)
    header = [html.unescape(re.sub(r"<[^>]+>", "", c)) for c in re.findall(r"<th[^>]*>(.*?)</th>", body)]
    col = header.index("errored runs (first error)")
    rows = {}
    for r in re.findall(r"<tr>(.*?)</tr>", body, flags=re.S)[1:]:
        cells = re.findall(r"<td[^>]*>(.*?)</td>", r, flags=re.S)
        rows[re.sub(r"<[^>]+>", "", cells[1])] = html.unescape(re.sub(r"<[^>]+>", " ", cells[col])).split()
    first = ERRORED["sam"][0][1]
    assert rows["sam"] == ["2/13", *first.split()]  # 5 search + 2 errored + 6 confirmation runs
    assert rows["sgd"] == ["0/11"] and rows["sgd_ire"] == ["0/10"]
    assert "RuntimeError" not in body  # only the first error line is shown
