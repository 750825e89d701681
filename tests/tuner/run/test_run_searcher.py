"""SharpSearch without a Ray cluster: every sampler name maps to Optuna, multi-objective studies, how
trials are told (PRUNED / FAIL / COMPLETE), and the pickle round trip that `resume` relies on."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
from e2e import smoke_spec
from optuna.trial import TrialState


def make_spec(tmp_path: Path, **changes: object):
    from tuner.spec import load_spec

    return load_spec(smoke_spec(tmp_path, **changes))


@pytest.mark.parametrize("sampler", ["tpe", "random", "cmaes", "gp", "qmc", "nsga2"])
def test_every_sampler_suggests_plain_configs(tmp_path: Path, sampler: str) -> None:
    from tuner.run.searcher import SharpSearch

    search = SharpSearch(make_spec(tmp_path, sampler={"name": sampler, "seed": 3}), tmp_path / "j")
    config = search.suggest("t1")
    assert config["method"] in ("sgd", "sam") and 0.01 <= config["lr"] <= 0.5
    assert not any("/" in k for k in config)  # no Optuna-internal `method/name` keys
    assert ("rho" in config) == (config["method"] == "sam")


def test_multi_objective_study(tmp_path: Path) -> None:
    from tuner.run.searcher import SharpSearch

    spec = make_spec(tmp_path, sampler={"name": "nsga2", "seed": 0},
                     objectives=[{"name": "eval/loss", "goal": "minimize"},
                                 {"name": "cost/step_time_ms", "goal": "minimize"}])
    search = SharpSearch(spec, tmp_path / "j")
    search.suggest("a")
    search.on_trial_complete("a", {"eval/loss": 0.1, "cost/step_time_ms": 2.0, "sharptune/complete": 1.0,
                                    "cost/grad_evals": 200})
    assert search._ot_study.trials[0].state == TrialState.COMPLETE
    assert search._ot_study.trials[0].values == [0.1, 2.0]


def test_outcomes_and_pickle_round_trip(tmp_path: Path) -> None:
    from tuner.run.searcher import SharpSearch

    search = SharpSearch(make_spec(tmp_path), tmp_path / "j")
    for tid in ("done", "stopped", "nan", "crash", "open"):
        search.suggest(tid)
    search.on_trial_result("stopped", {"eval/loss": 0.5, "cost/grad_evals": 20.0})
    search.on_trial_complete("done", {"eval/loss": 0.01, "cost/grad_evals": 200.0, "sharptune/complete": 1.0})
    search.on_trial_complete("stopped", {"eval/loss": 0.4, "cost/grad_evals": 40.0})  # ASHA's STOP
    search.on_trial_complete("nan", {"eval/loss": float("nan"), "cost/grad_evals": 5.0, "diverged": 1.0})
    search.on_trial_complete("crash", None, error=True)
    blob = pickle.dumps(search)
    orphan = search._ot_study.ask()  # asked after the "checkpoint": belongs to no Ray trial
    restored = pickle.loads(blob)
    config = restored.suggest("next")  # the trial the restored Ray samples in its place takes it over
    assert config["_adopt"] == "optuna-5"
    states = {t.user_attrs.get("ray_trial_id", "orphan"): t.state for t in restored._ot_study.trials}
    assert states == {"done": TrialState.COMPLETE, "stopped": TrialState.PRUNED, "nan": TrialState.FAIL,
                      "crash": TrialState.FAIL, "open": TrialState.RUNNING, "next": TrialState.RUNNING}
    assert len(restored._ot_study.trials) == 6  # no trial asked for "next": Optuna and Ray agree
    assert restored._ot_study.trials[1].intermediate_values == {20: 0.5, 40: 0.4}
    assert orphan.number == 5
    restored.on_trial_complete("open", {"eval/loss": 0.02, "cost/grad_evals": 200.0, "sharptune/complete": 1.0})
    assert restored._ot_study.trials[4].state == TrialState.COMPLETE  # the restored map still tells it


def test_restored_searcher_adopts_finished_orphans_and_replays_them(tmp_path: Path) -> None:
    """A trial asked and finished after Ray's last save: the restored Ray's new trial takes it over with
    the same values and the record to replay; reports for it are ignored, never an Optuna error."""
    from tuner.run.searcher import SharpSearch, finished_records

    search = SharpSearch(make_spec(tmp_path), tmp_path / "j")
    search.suggest("saved")
    blob = pickle.dumps(search)  # Ray's last save
    first = search.suggest("late")
    search.on_trial_result("late", {"eval/loss": 0.3, "cost/grad_evals": 100.0})
    search.on_trial_complete("late", {"eval/loss": 0.2, "cost/grad_evals": 200.0, "sharptune/complete": 1.0,
                                      "train/loss": float("nan")})
    restored = pickle.loads(blob)
    config = restored.suggest("new")
    assert config == {**first, "_adopt": "late"}
    restored.on_trial_result("new", {"eval/loss": 0.2, "cost/grad_evals": 200.0})  # the replay: no raise
    restored.on_trial_complete("new", {"eval/loss": 0.2, "cost/grad_evals": 200.0, "sharptune/complete": 1.0})
    trials = restored._ot_study.trials
    assert len(trials) == 2 and trials[1].state == TrialState.COMPLETE and trials[1].values == [0.2]
    records = finished_records(restored._ot_study)
    assert records == {"late": {"result": {"eval/loss": 0.2, "cost/grad_evals": 200.0, "sharptune/complete": 1.0,
                                           "train/loss": None}}}
    assert "saved" not in records  # still running: it resumes from its checkpoint


def test_trials_stopped_by_the_time_budget_are_pruned_in_optuna(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from tuner.run.searcher import SharpSearch, prune_stopped

    search = SharpSearch(make_spec(tmp_path), tmp_path / "j")
    for tid in ("running", "errored", "done"):
        search.suggest(tid)
    search.on_trial_complete("done", {"eval/loss": 0.1, "cost/grad_evals": 200.0, "sharptune/complete": 1.0})
    results = [SimpleNamespace(metrics={"trial_id": "running", "eval/loss": 0.3, "cost/grad_evals": 60.0}, error=None),
               SimpleNamespace(metrics={"trial_id": "errored"}, error=RuntimeError("x")),
               SimpleNamespace(metrics={"trial_id": "done", "eval/loss": 0.1}, error=None)]
    assert prune_stopped(search._ot_study, results, "cost/grad_evals", "eval/loss") == 1
    by_id = {t.user_attrs["ray_trial_id"]: t for t in search._ot_study.trials}
    assert by_id["running"].state == TrialState.PRUNED and by_id["running"].intermediate_values == {60: 0.3}
    assert by_id["running"].user_attrs["sharptune_status"] == "pruned"
    assert by_id["errored"].state == TrialState.RUNNING  # Ray's error path tells it (FAIL), not this one
    assert by_id["done"].state == TrialState.COMPLETE


def test_a_half_written_last_journal_line_is_dropped_before_a_resume_appends(tmp_path: Path) -> None:
    """A full disk cut the last write short: Optuna reads past it only while it stays last."""
    from tuner.run.searcher import SharpSearch, drop_torn_tail, journal_storage

    journal = tmp_path / "j"
    search = SharpSearch(make_spec(tmp_path), journal)
    search.suggest("a")
    whole = journal.read_bytes()
    journal.write_bytes(whole + b'{"op_code":7,"worker_id":"x","tri')  # the torn write
    assert drop_torn_tail(journal) == len(b'{"op_code":7,"worker_id":"x","tri')
    assert journal.read_bytes() == whole and drop_torn_tail(journal) == 0
    again = pickle.loads(pickle.dumps(search))  # what a resume does: it reads and appends again
    again.on_trial_complete("a", {"eval/loss": 0.1, "cost/grad_evals": 200.0, "sharptune/complete": 1.0})
    import optuna
    assert optuna.load_study(study_name="smoke", storage=journal_storage(journal)).trials[0].values == [0.1]
