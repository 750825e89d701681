"""The runner's header and summary, exactly as printed (other tests read these lines), without Ray."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
from e2e import smoke_spec

from tuner.names import COMPLETE_KEY, COMPLETED, DIVERGED, DIVERGED_KEY, ERRORED, PRUNED
from tuner.run import console
from tuner.run.experiment import Experiment
from tuner.spec import load_spec
from tuner.trial.protocol import outcome


def _cells(line: str) -> list[str]:
    return re.split(r"\s{2,}", line.strip())


class _Results(list):
    num_errors = 1


MARKERS = {COMPLETED: {COMPLETE_KEY: 1.0}, DIVERGED: {DIVERGED_KEY: 1.0}}  # the report keys the runner reads


def _result(method: str, status: str, error: Exception | None = None) -> SimpleNamespace:
    return SimpleNamespace(config={"method": method, "lr": 0.1}, error=error,
                           metrics={**MARKERS.get(status, {}), "trial_id": "t"})


def test_the_fixture_trials_end_as_they_are_named() -> None:
    """The fixture sets the keys `outcome` reads: a completed trial counts as completed, not pruned."""
    for status in (COMPLETED, PRUNED, DIVERGED):
        r = _result("sgd", status)
        assert outcome(r.metrics, r.error is not None) == status
    r = _result("sgd", "x", RuntimeError("boom"))
    assert outcome(r.metrics, r.error is not None) == ERRORED


def test_the_tally_column_counts_each_outcome_in_its_place(tmp_path: Path) -> None:
    """completed/pruned/diverged/errored as 4/3/2/1: a swapped or dropped column would show."""
    spec = load_spec(smoke_spec(tmp_path))
    statuses = [COMPLETED] * 4 + [PRUNED] * 3 + [DIVERGED] * 2
    search = _Results([*(_result("sgd", s) for s in statuses), _result("sgd", "x", RuntimeError("boom")),
                       _result("sam", PRUNED)])
    table = pd.DataFrame([{"method": "sgd", "run_ids": ["a"], "rank": 1, "mean": 0.8, "low": None, "high": None,
                           "full_budget": True, "hparams": {"lr": 0.1}, "source": "search"}])
    lines = console.summary(spec, Path(spec.experiment_dir), search, None, table)
    titles = _cells(lines[2])
    rows = {cells[0]: dict(zip(titles, cells, strict=False)) for cells in map(_cells, lines[3:5])}
    assert rows["sgd"]["trials c/p/d/e"] == "4/3/2/1"
    assert rows["sam"]["trials c/p/d/e"] == "0/1/0/0"


def test_header_and_summary_lines(tmp_path: Path) -> None:
    spec = load_spec(smoke_spec(tmp_path, description="a test", confirm={"top_k": 1, "seeds": [0, 1]}))
    folder = Path(spec.experiment_dir)
    text = console.header(spec, folder, Experiment(spec).confirm_runs_at_most()).splitlines()
    assert text[0] == "sharptune: smoke: a test"
    assert text[1] == "  methods   sgd, sam"
    assert text[4] == "  confirm   top 1 per method x seeds [0, 1] (at most 4 runs)"
    assert text[5] == f"  results   {folder} (resolved spec: {folder / 'resolved_spec.yaml'})"
    search = _Results([_result("sgd", "completed"), _result("sgd", "pruned"),
                       _result("sam", "x", RuntimeError("boom"))])
    table = pd.DataFrame([{"method": "sgd", "run_ids": ["a"], "rank": 1, "mean": 0.8, "low": 0.7, "high": 0.9,
                           "full_budget": False, "hparams": {"lr": 0.1}, "source": "confirm"}])
    lines = console.summary(spec, folder, search, search, table)
    assert lines[0] == "\nsummary of smoke (eval/loss, minimize; winners from the confirm runs):"
    assert lines[1].startswith("ranking: each method's winner is its best config by its mean eval/loss over the "
                               "confirmation seeds") and "the upper end of the 95% t-interval" in lines[1]
    assert [_cells(line) for line in lines[2:5]] == [
        ["method", "rank", "eval/loss", "95% CI", "grad/step", "overhead", "to target: evals", "s", "seeds",
         "trials c/p/d/e", "config"],
        ["sgd", "1", "0.8", "[0.7, 0.9]", "-", "-", "-", "-", "-", "1/1/0/0", '{"lr": 0.1}'],
        ["sam", "-", "-", "-", "-", "-", "-", "-", "-", "0/0/0/1", "(no completed trial)"]]
    assert lines[5].startswith("columns: ")
    assert lines[6] == ('errored: sam: 2 trial(s); first error: RuntimeError: boom; '
                        'its config {"method": "sam", "lr": 0.1}')
    assert lines[7:10] == [
        "warning: sgd's winner comes only from pruned trials: its value is from early in training, not "
        "comparable with a full run's",
        "warning: sgd had 1 completed search trial (fewer than 3): its winner was picked among too few full runs "
        "to trust",
        "warning: sam has no trial that ran its whole budget (0 pruned, 0 diverged, 1 errored): its row compares "
        "nothing at full budget"]
    assert lines[10] == "confirmation: 3 runs (1 errored); `python -m tuner report` draws the comparison"
    assert lines[-1] == f"browse: python -m tuner ui smoke --storage {spec.storage_path}"


def test_summary_of_an_all_diverged_study_and_an_oom_says_so(tmp_path: Path) -> None:
    spec = load_spec(smoke_spec(tmp_path))
    search = _Results([_result("sgd", "diverged"), _result("sgd", "diverged"),
                       _result("sam", "x", RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"))])
    table = pd.DataFrame([{"method": "sgd", "run_ids": ["a", "b"], "rank": 1, "mean": float("nan"), "low": None,
                           "high": None, "full_budget": False, "hparams": {"lr": 0.1}, "source": "search"}])
    lines = console.summary(spec, Path(spec.experiment_dir), search, None, table)
    assert _cells(lines[3]) == ["sgd", *["-"] * 8, "0/0/2/0", "(no finite result: every trial diverged)"]
    assert not any("pruned trials" in line for line in lines)
    oom = next(line for line in lines if line.startswith("errored: sam"))
    assert "out of memory" in oom and "batch_size" in oom and "precision: bf16" in oom and '"lr": 0.1' in oom


def test_summary_shows_each_methods_cost_to_the_target(tmp_path: Path) -> None:
    spec = load_spec(smoke_spec(tmp_path))
    search = _Results([_result("sgd", "completed"), _result("sam", "completed")])
    common = {"low": None, "high": None, "full_budget": True, "source": "search", "target": 0.05,
              "target_source": "best full-budget value of sgd"}
    table = pd.DataFrame([
        {"method": "sam", "run_ids": ["b"], "rank": 1, "mean": 0.01, "hparams": {"lr": 0.1}, **common,
         "evals_to_target": 80.0, "wall_s_to_target": 1.5, "reached_target": 2 / 3},
        {"method": "sgd", "run_ids": ["a"], "rank": 2, "mean": 0.05, "hparams": {"lr": 0.2}, **common,
         "evals_to_target": 200.0, "wall_s_to_target": 125.0, "reached_target": 1.0}])
    lines = console.summary(spec, Path(spec.experiment_dir), search, None, table)
    assert _cells(lines[3])[4:9] == ["-", "-", "80", "1.5s", "67%"] and lines[3].startswith("sam ")
    assert _cells(lines[4])[4:9] == ["-", "-", "200", "2m05s", "100%"]
    assert lines[6] == ("target 0.0500 (best full-budget value of sgd): each method's winner, median grad evals and "
                        "seconds to reach it over the seeds that do, and the fraction that do")
    header = console.header(spec, Path(spec.experiment_dir), 0).splitlines()[3]
    assert header.startswith("  search    8 trials (4 per method, each its own study and scheduler) x 200")
