"""`budget.split: per_method` without a Ray cluster: one study per method, equal trials each whatever the
results say, queued configs, warm start, grids and orphan adoption per study, and the `shared` escape."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

from e2e import smoke_spec
from optuna.trial import TrialState

from tuner.layout import JOURNAL_FILE
from tuner.run.searcher import SHARED, SharpSearch, load_studies
from tuner.run.split import MethodSplitSearch, build_search, quotas
from tuner.spec import load_spec

DONE = {"sharptune/complete": 1.0, "cost/grad_evals": 200.0}


def _spec(tmp_path: Path, **changes: object):
    return load_spec(smoke_spec(tmp_path, **changes))


def _journal(spec) -> Path:
    return Path(spec.experiment_dir) / JOURNAL_FILE


def test_each_method_gets_its_share_whatever_leads(tmp_path: Path) -> None:
    """sgd wins every trial (TPE on one shared study would follow it); each study still gets half."""
    spec = _spec(tmp_path, sampler={"name": "tpe", "seed": 0},
                 budget={"num_samples": 9, "max_concurrent_trials": 1, "trial_grad_evals": 200})
    assert spec.budget.split == "per_method"  # the default for two methods
    search = MethodSplitSearch(spec, _journal(spec))
    got = []
    for i in range(9):
        config = search.suggest(f"t{i}")
        got.append(config["method"])
        assert ("rho" in config) == (config["method"] == "sam")
        loss = 0.01 if config["method"] == "sgd" else 0.9
        search.on_trial_complete(f"t{i}", {"eval/loss": loss, **DONE})
    assert got == ["sgd", "sam"] * 4 + ["sgd"]  # fewest asked first, ties in spec order
    assert quotas(spec) == {"sgd": 5, "sam": 4} == search.used()
    state = json.loads((Path(spec.experiment_dir) / "sharptune.json").read_text())
    assert state["budget"] == {"sgd": {"used": 5, "of": 5}, "sam": {"used": 4, "of": 4}}  # what `list` reads
    studies = load_studies(spec.experiment_dir, spec.name)
    assert set(studies) == {"sgd", "sam"}
    assert "method" not in studies["sam"].trials[0].params  # each study samples its own method only
    assert len(studies["sam"].get_trials(states=(TrialState.COMPLETE,))) == 4


def test_shared_split_keeps_one_study_over_method(tmp_path: Path) -> None:
    spec = _spec(tmp_path, budget={"num_samples": 4, "max_concurrent_trials": 1, "trial_grad_evals": 200,
                                   "split": "shared"})
    assert isinstance(build_search(spec, spec.experiment_dir).searcher, SharpSearch)
    SharpSearch(spec, _journal(spec)).suggest("a")
    studies = load_studies(spec.experiment_dir, spec.name)
    assert list(studies) == [SHARED] and "method" in studies[SHARED].trials[0].params


def test_enqueued_configs_go_to_their_methods_study(tmp_path: Path) -> None:
    queued = [{"method": "sam", "lr": 0.1, "rho": 0.05}, {"method": "sam", "lr": 0.2, "rho": 0.1}]
    spec = _spec(tmp_path, enqueue=queued)
    search = MethodSplitSearch(spec, _journal(spec))
    configs = [search.suggest(t) for t in "abcd"]
    assert configs[1] == {**queued[0], "momentum": 0.0} and configs[3] == {**queued[1], "momentum": 0.0}
    assert [c["method"] for c in configs] == ["sgd", "sam", "sgd", "sam"]  # queued ones do not jump the turn


def test_grid_walks_each_methods_own_points(tmp_path: Path) -> None:
    spec = _spec(tmp_path, sampler={"name": "grid", "seed": 0}, budget={"num_samples": 6, "trial_grad_evals": 200},
                 parameters={"lr": {"values": [0.01, 0.1]}, "rho": {"values": [0.05, 0.1], "when": {"method": ["sam"]}},
                             "momentum": {"value": 0.0}})
    search = MethodSplitSearch(spec, _journal(spec))
    assert search.quotas == {"sgd": 2, "sam": 4}
    configs = [search.suggest(f"t{i}") for i in range(6)]
    sgd = sorted(c["lr"] for c in configs if c["method"] == "sgd")
    sam = sorted((c["lr"], c["rho"]) for c in configs if c["method"] == "sam")
    assert sgd == [0.01, 0.1] and sam == [(0.01, 0.05), (0.01, 0.1), (0.1, 0.05), (0.1, 0.1)]


def test_restore_adopts_orphans_in_their_own_study_and_keeps_the_count(tmp_path: Path) -> None:
    spec = _spec(tmp_path, budget={"num_samples": 6, "max_concurrent_trials": 2, "trial_grad_evals": 200})
    search = MethodSplitSearch(spec, _journal(spec))
    search.suggest("a")  # sgd
    search.suggest("b")  # sam
    search.on_trial_complete("a", {"eval/loss": 0.1, **DONE})
    saved = tmp_path / "searcher.pkl"
    search.save(str(saved))  # Ray's last save
    late = search.suggest("c")  # sgd, asked after the save: an orphan for the restored Ray
    search.on_trial_complete("c", {"eval/loss": 0.2, **DONE})
    restored = MethodSplitSearch(spec, _journal(spec))
    restored.restore(str(saved))
    adopted = restored.suggest("new")
    assert adopted == {**late, "_adopt": "c"}  # same values, the old id named: replayed, not trained again
    assert restored.used() == {"sgd": 2, "sam": 1}  # the orphan was counted once, not twice
    assert restored.suggest("next")["method"] == "sam"
    restored.on_trial_complete("b", {"eval/loss": 0.3, **DONE})  # the restored map still tells it
    sam = load_studies(spec.experiment_dir, spec.name)["sam"]
    assert [t.state for t in sam.trials] == [TrialState.COMPLETE, TrialState.RUNNING]
    assert pickle.loads(pickle.dumps(restored)).used() == restored.used()


def test_warm_start_from_a_shared_study_sorts_trials_by_method(tmp_path: Path) -> None:
    first = _spec(tmp_path, name="first", budget={"num_samples": 4, "trial_grad_evals": 200, "split": "shared"})
    old = SharpSearch(first, _journal(first))
    for tid in "abcd":
        old.suggest(tid)
        old.on_trial_complete(tid, {"eval/loss": 0.1, **DONE})
    methods = [t.params["method"] for t in old.study.trials]
    second = _spec(tmp_path, name="second", warm_start={"from": "first"})
    search = MethodSplitSearch(second, _journal(second))
    for method, s in search.searches.items():
        warm = s.study.get_trials(states=(TrialState.COMPLETE,))
        assert len(warm) == methods.count(method)
        assert all("method" not in t.params for t in warm)
    assert search.used() == {"sgd": 0, "sam": 0}  # warm trials are not this run's budget


def test_one_method_spec_keeps_one_study_by_default(tmp_path: Path) -> None:
    spec = _spec(tmp_path, methods=["sgd"], budget={"num_samples": 2, "trial_grad_evals": 200},
                 parameters={"lr": {"type": "float", "low": 0.01, "high": 0.5, "log": True}})
    assert spec.budget.split == "shared"  # nothing to split
    assert quotas(spec) == {"sgd": 2}
