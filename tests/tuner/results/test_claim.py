"""The claim table from a real MLflow store, and its printed block: the quantity per setting beside the paper's.

The store holds a SAM-edge grid as `run` records it (search runs; then confirmation seeds for a second
experiment): λ_max/edge per (lr, rho), one setting outside Long & Bartlett's band, one diverged, one
GD run pruned.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pandas as pd
import pytest
from e2e import ROOT
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

from tuner.results.claim import claim_table
from tuner.run.console import claim_lines
from tuner.spec import load_spec
from tuner.tracking.reader import ExperimentStore

EDGE = ROOT / "search_spaces" / "claim_sam_edge.yaml"
METRIC = "diag/lambda_over_edge"
# (method, lr, rho, phase, seed, status, final λ_max/edge)
SEARCH = [("sgd", 0.02, None, "search", 0, "completed", 1.01), ("sgd", 0.05, None, "search", 0, "pruned", 0.4),
          ("sam", 0.02, 0.01, "search", 0, "completed", 1.03), ("sam", 0.02, 0.1, "search", 0, "completed", 1.12),
          ("sam", 0.05, 0.01, "search", 0, "diverged", math.nan)]
CONFIRM = [("sam", 0.02, 0.01, "confirm", s, "completed", v) for s, v in enumerate((1.00, 1.02, 1.04))]


def _store(root: Path, name: str, runs: list[tuple]) -> ExperimentStore:
    folder = root / "results" / name
    folder.mkdir(parents=True)
    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    exp = client.create_experiment(f"sharptune/{name}", artifact_location=(folder / "artifacts").as_uri())
    parent = client.create_run(exp, tags={"sharptune.role": "parent"}).info.run_id
    for i, (method, lr, rho, phase, seed, status, value) in enumerate(runs):
        tags = {"mlflow.parentRunId": parent, "sharptune.role": "trial", "sharptune.phase": phase,
                "sharptune.method": method, "sharptune.trial_id": f"t{i}", "sharptune.seed": str(seed),
                "sharptune.status": status}
        run = client.create_run(exp, start_time=1_700_000_000_000 + i, tags=tags).info.run_id
        params = {"method": method, "lr": lr, "momentum": 0.0, **({"rho": rho} if rho is not None else {})}
        client.log_batch(run, params=[Param(k, str(v)) for k, v in params.items()],
                         metrics=[Metric(METRIC, 0.5 + i / 10, 1_700_000_000_000 + i, 1000),
                                  Metric(METRIC, value, 1_700_000_000_000 + i, 4000)])
        client.set_terminated(run, "FINISHED")
    return ExperimentStore.open(name, storage=root / "results")


def _cells(line: str) -> list[str]:
    return re.split(r"\s{2,}", line.strip())


def test_each_setting_beside_the_papers_band(tmp_path: Path) -> None:
    spec = load_spec(EDGE)
    store = _store(tmp_path, "edge", SEARCH)
    table = claim_table(spec.claim, store.trials(), methods=spec.methods, history=store.metric_history)
    got = [(r.method, r.setting, None if math.isnan(r.mean) else r.mean, r.n, r.n_diverged, r.n_pruned, r.verdict)
           for r in table.itertuples()]
    # where each started: the value at 1000 grad evals (0.5 + i / 10 for the i-th run); a pruned run is left out
    assert list(table["first"].round(6).fillna(-1)) == [0.5, -1, 0.7, 0.8, 0.9]
    assert set(table["first_at"].dropna()) == {1000.0}
    assert got == [
        ("sgd", {"lr": 0.02, "rho": None}, 1.01, 1, 0, 0, ""),  # GD: the paper's words, no verdict
        ("sgd", {"lr": 0.05, "rho": None}, None, 0, 0, 1, ""),  # pruned: stopped early, left out
        ("sam", {"lr": 0.02, "rho": 0.01}, 1.03, 1, 0, 0, "within"),
        ("sam", {"lr": 0.02, "rho": 0.1}, 1.12, 1, 0, 0, "outside"),  # above 1.09
        ("sam", {"lr": 0.05, "rho": 0.01}, None, 0, 1, 0, "diverged")]
    lines = claim_lines(spec, table, None)
    assert lines[0] == ("\nclaim (Long & Bartlett 2024, SAM's edge of stability): diag/lambda_over_edge at the "
                        "end of training, per lr and rho")
    assert [_cells(line) for line in lines[1:7]] == [
        ["method", "lr", "rho", "at 1,000", METRIC, "95% CI", "runs", "claimed", "verdict"],
        ["sgd", "0.02", "-", "0.500", "1.01", "-", "1", "≈ 1 (GD's edge is 2/η)", "-"],
        ["sgd", "0.05", "-", "-", "no value", "-", "0 (+1 pruned, left out)", "≈ 1 (GD's edge is 2/η)", "-"],
        ["sam", "0.02", "0.01", "0.700", "1.03", "-", "1", "0.99–1.09", "within"],
        ["sam", "0.02", "0.1", "0.800", "1.12", "-", "1", "0.99–1.09", "outside"],
        ["sam", "0.05", "0.01", "0.900", "diverged", "-", "0 (+1 diverged)", "0.99–1.09", "diverged"]]
    assert lines[7].startswith("claimed: the paper's value or band") and "at 1,000: where it stood" in lines[7]


def test_confirmation_seeds_give_the_setting_an_interval(tmp_path: Path) -> None:
    spec = load_spec(EDGE)
    table = claim_table(spec.claim, _store(tmp_path, "seeds", SEARCH + CONFIRM).trials(), methods=spec.methods)
    assert len(table) == 1  # the confirmation runs, not the search's grid
    row = table.iloc[0]
    assert (row["n"], row["mean"]) == (3, pytest.approx(1.02))
    # std 0.02 over 3 seeds: half-width 4.303 * 0.02 / √3 = 0.0497 -> rounded at 1e-2
    assert _cells(claim_lines(spec, table, None)[2])[3:5] == ["1.02", "[0.97, 1.07]"]  # no history: no first


def test_to_target_is_a_ratio_to_the_first_methods_grad_evals(tmp_path: Path) -> None:
    spec = load_spec(ROOT / "search_spaces" / "claim_admire_tiny_lm.yaml")
    winners = pd.DataFrame([
        {"method": "adamw", "evals_to_target": 3000.0, "reached_target": 2 / 3, "n_target_runs": 3,
         "target": 3.2104, "target_source": "best full-budget value of adamw"},
        {"method": "admire", "evals_to_target": 1200.0, "reached_target": 1.0, "n_target_runs": 3,
         "target": 3.2104, "target_source": "best full-budget value of adamw"}])
    table = claim_table(spec.claim, pd.DataFrame(columns=["method"]), winners, spec.methods)
    assert list(table["ratio"]) == [1.0, 0.4] and list(table["verdict"]) == ["", ""]  # a number: no band
    lines = claim_lines(spec, table, winners)
    assert lines[0].endswith("grad evals to reach the target train/loss 3.21 (best full-budget value of adamw), "
                             "and their ratio to adamw's")
    assert [_cells(line) for line in lines[1:4]] == [
        ["method", "grad evals", "seeds", "x adamw", "claimed", "verdict"],
        ["adamw", "3,000", "67%", "1.00", "-", "-"],
        ["admire", "1,200", "100%", "0.400", "0.5", "-"]]
