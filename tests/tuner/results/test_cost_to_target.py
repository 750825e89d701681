"""Cost to a target, read from a real MLflow store: a method that pays two gradients a step but reaches the
baseline's best in 0.4x the gradient evaluations shows as cheaper, in evaluations and in seconds; the
fraction of seeds that reach the target; the spec's own `metric.target` wins over the default."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

from tuner.results.winners import winners
from tuner.tracking.reader import ExperimentStore

STEP_MS = {"sgd": 10.0, "sam": 20.0}  # sam: two gradient evaluations a step, twice the step time
EVALS_PER_STEP = {"sgd": 1, "sam": 2}
REACH = {"sgd": 500, "sam": 200}  # where each reaches 0.80: sam at 0.4x sgd's evaluations
FINAL = {"sgd": 0.80, "sam": 0.85}


def _accuracy(method: str, evals: int, seed: int) -> float:
    if method == "sam" and seed == 2:  # one sam seed never gets there
        return 0.70 * evals / 600
    if evals >= REACH[method]:  # past the target (0.80, sgd's final) from REACH on
        return FINAL[method] if evals == 600 else 0.805
    return 0.80 * evals / REACH[method] - 0.01


def _run(client: MlflowClient, exp: str, parent: str, method: str, phase: str, seed: int, t0: int) -> None:
    tags = {"mlflow.parentRunId": parent, "sharptune.role": "trial", "sharptune.phase": phase,
            "sharptune.method": method, "sharptune.trial_id": f"{method}{phase}{seed}",
            "sharptune.seed": str(seed), "sharptune.status": "completed"}
    run = client.create_run(exp, start_time=t0, tags=tags).info.run_id
    params = {"method": method, "lr": 0.1, **({"label_noise": 0.0} if phase == "confirm" else {})}
    client.log_batch(run, params=[Param(k, str(v)) for k, v in params.items()])
    metrics = []
    for i, evals in enumerate(range(0, 601, 100)):
        wall = evals / EVALS_PER_STEP[method] * STEP_MS[method] / 1000
        for key, value in {"eval/accuracy": _accuracy(method, evals, seed), "cost/grad_evals": float(evals),
                           "cost/wall_s": wall, "cost/step_time_ms": STEP_MS[method]}.items():
            metrics.append(Metric(key, value, t0 + i, evals))
    client.log_batch(run, metrics=metrics)
    client.set_terminated(run, "FINISHED")


def _experiment(root: Path, name: str, target: float | None = None) -> ExperimentStore:
    folder = root / "results" / name
    folder.mkdir(parents=True)
    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    exp = client.create_experiment(f"sharptune/{name}", artifact_location=(folder / "artifacts").as_uri())
    parent = client.create_run(exp, tags={"sharptune.role": "parent"}).info.run_id
    metric = {"name": "eval/accuracy", "goal": "maximize", **({"target": target} if target is not None else {})}
    client.log_text(parent, yaml.safe_dump({"name": name, "metric": metric, "methods": ["sgd", "sam"]}), "spec.yaml")
    t0 = 1_700_000_000_000
    for k, method in enumerate(("sgd", "sam")):
        _run(client, exp, parent, method, "search", 0, t0 + 10 * k)
        for seed in (0, 1, 2):
            _run(client, exp, parent, method, "confirm", seed, t0 + 100 + 10 * k + seed)
    return ExperimentStore.open(name, storage=root / "results")


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory):
    store = _experiment(tmp_path_factory.mktemp("cost"), "cost")
    table, _, _ = winners(store)
    return table.set_index("method")


def test_twice_the_step_cost_but_fewer_evaluations_is_cheaper(table) -> None:
    sgd, sam = table.loc["sgd"], table.loc["sam"]
    assert sgd["target"] == pytest.approx(0.80)  # the baseline's (first method's) best at full budget
    assert sgd["target_source"] == "best full-budget value of sgd"
    assert sam["overhead"] == pytest.approx(2.0)  # step time alone says twice as expensive
    assert sam["evals_to_target"] == 200 and sgd["evals_to_target"] == 500
    assert sam["evals_to_target"] == pytest.approx(0.4 * sgd["evals_to_target"])
    assert sam["wall_s_to_target"] == pytest.approx(2.0) and sgd["wall_s_to_target"] == pytest.approx(5.0)
    assert sam["wall_s_to_target"] < sgd["wall_s_to_target"]  # and cheaper in seconds too


def test_fraction_of_seeds_that_reach_the_target(table) -> None:
    assert table.loc["sgd", "reached_target"] == 1.0
    assert table.loc["sam", "reached_target"] == pytest.approx(2 / 3)  # seed 2 never reaches it
    assert table.loc["sam", "n_target_runs"] == 3  # the confirmation's seeds, not the search run


def test_the_specs_own_target(tmp_path: Path) -> None:
    table, _, _ = winners(_experiment(tmp_path, "own", target=0.5))
    row = table.set_index("method").loc["sgd"]
    assert row["target"] == 0.5 and row["target_source"] == "metric.target"
    assert row["evals_to_target"] == 400  # 0.8 * 400 / 500 - 0.01 = 0.63 is the first report past 0.5
    unreachable, _, _ = winners(_experiment(tmp_path, "far", target=0.99))
    assert math.isnan(unreachable.set_index("method").loc["sam", "evals_to_target"])
    assert unreachable.set_index("method").loc["sam", "reached_target"] == 0.0
