"""The summary of the issue's case, read from a real MLflow store: the text says what it means (issue 32).

SGD is best on clean labels (0.943 against SAM's 0.936) and SAM at 20 % label noise; SAM's seeds disagree,
so SGD ranks first by the lower end of the interval although its mean over both levels is lower. The
summary must say so in words, show both levels, the cost, rounded numbers and the warnings.
"""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from e2e import smoke_spec
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

from tuner.results.winners import winners
from tuner.run import console
from tuner.spec import load_spec
from tuner.tracking.reader import ExperimentStore

# final eval/accuracy per (method, seed) at label noise 0.0 and 0.2
FINAL = {"sgd": {0: (0.943, 0.807), 1: (0.944, 0.808), 2: (0.942, 0.806)},
         "sam": {0: (0.931, 0.84), 1: (0.941, 0.92), 2: (0.936, 0.88)}}
HPARAMS = {"sgd": {"lr": 0.2, "momentum": 0.0}, "sam": {"lr": 0.05, "rho": 0.05, "momentum": 0.0}}
STEP_MS = {"sgd": 10.0, "sam": 20.0}


def _run(client: MlflowClient, exp: str, parent: str, method: str, seed: int, noise: float, t0: int) -> None:
    tags = {"mlflow.parentRunId": parent, "sharptune.role": "trial", "sharptune.phase": "confirm",
            "sharptune.method": method, "sharptune.trial_id": f"{method}{seed}{noise}",
            "sharptune.seed": str(seed), "sharptune.status": "completed"}
    run = client.create_run(exp, start_time=t0, tags=tags).info.run_id
    params = {"method": method, **HPARAMS[method], "label_noise": noise}
    client.log_batch(run, params=[Param(k, str(v)) for k, v in params.items()])
    final = FINAL[method][seed][noise > 0]
    metrics = [Metric("eval/accuracy", 0.5, t0, 300), Metric("eval/accuracy", final, t0 + 1, 600),
               Metric("cost/wall_s", 3.0, t0, 300), Metric("cost/wall_s", 6.0, t0 + 1, 600),
               Metric("cost/step_time_ms", STEP_MS[method], t0 + 1, 600)]
    client.log_batch(run, metrics=metrics)
    client.set_terminated(run, "FINISHED")


def _search(method: str, status: str) -> SimpleNamespace:
    done = {"sharptune/complete": 1.0} if status == "completed" else {}
    return SimpleNamespace(config={"method": method, **HPARAMS[method]}, error=None, metrics=done)


class _Results(list):
    num_errors = 0


@pytest.fixture(scope="module")
def lines(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    root = tmp_path_factory.mktemp("issue")
    path = smoke_spec(root, name="issue", metric={"name": "eval/accuracy", "goal": "maximize"},
                      workload={"name": "mnist_mlp", "options": {"n_train": 100}},
                      confirm={"top_k": 1, "seeds": [0, 1, 2], "label_noise": [0.0, 0.2]},
                      enqueue=[{"method": "sam", "lr": 0.05, "rho": 0.05}])
    spec = load_spec(path)
    folder = Path(spec.experiment_dir)
    folder.mkdir(parents=True)
    client = MlflowClient(spec.tracking_uri)
    exp = client.create_experiment("sharptune/issue", artifact_location=(folder / "artifacts").as_uri())
    parent = client.create_run(exp, tags={"sharptune.role": "parent"}).info.run_id
    client.log_text(parent, yaml.safe_dump({"name": "issue", "metric": spec.metric.to_dict(),
                                            "methods": ["sgd", "sam"]}), "spec.yaml")
    t0 = 1_700_000_000_000
    for k, method in enumerate(FINAL):
        for seed in (0, 1, 2):
            for noise in (0.0, 0.2):
                _run(client, exp, parent, method, seed, noise, t0 + 100 * k + 10 * seed + int(noise * 10))
    store = ExperimentStore.open("issue", storage=root / "results")
    table, _, trials = winners(store, spec.metric.name, spec.metric.goal)
    search = _Results([_search("sgd", "completed")] * 3 + [_search("sgd", "pruned")]
                      + [_search("sam", "completed")] * 2 + [_search("sam", "pruned")] * 2)
    return console.summary(spec, folder, search, _Results(), table, trials)


def _cells(line: str) -> list[str]:
    return re.split(r"\s{2,}", line.strip())


def test_the_ranking_rule_is_said_in_words(lines: list[str]) -> None:
    rule = lines[1]
    assert rule.startswith("ranking: each method's winner is its best config by its mean eval/accuracy over the "
                           "confirmation seeds (each seed averaged over the stress levels)")
    assert "ranked by the lower end of the 95% t-interval of that mean, not by the mean" in rule


def test_each_method_per_stress_level_with_its_cost_rounded(lines: list[str]) -> None:
    assert _cells(lines[2]) == ["method", "rank", "eval/accuracy", "95% CI", "clean", "noise 0.2", "grad/step",
                                "overhead", "to target: evals", "s", "seeds", "trials c/p/d/e", "config"]
    # sgd's seeds (mean over both levels) 0.875, 0.876, 0.874: std 0.001, half-width 4.303 * 0.001 / √3 = 0.0025
    # target: sgd's clean mean 0.943, which seeds 0 and 1 reach at 600 grad evals, after 6 s
    assert _cells(lines[3]) == ["sgd", "1", "0.875", "[0.873, 0.877]", "0.943 ± 0.002", "0.807 ± 0.002", "1",
                                "1.00x", "600", "6s", "67%", "3/1/0/0", '{"lr": 0.2, "momentum": 0.0}']
    # sam's seeds 0.8855, 0.9305, 0.908: mean 0.908, std 0.0225, half-width 0.056 -> two decimals; it wins at
    # 20 % noise and loses on clean labels, and ranks second although its mean is higher
    sam = _cells(lines[4])
    assert sam[:8] == ["sam", "2", "0.91", "[0.85, 0.96]", "0.94 ± 0.01", "0.88 ± 0.10", "2", "2.00x"]
    assert sam[8:11] == ["-", "-", "0%"]
    assert not any("0.9080000000000001" in line or "0.943333" in line for line in lines)


def test_one_footer_line_explains_the_columns(lines: list[str]) -> None:
    footer = [line for line in lines if line.startswith("columns: ")]
    assert len(footer) == 1
    for said in ("clean / noise 0.2: the winner's mean ± half-width over seeds", "grad/step: gradient evaluations",
                 "overhead: median step time over the base optimizer's",
                 "trials c/p/d/e: search trials completed/pruned/diverged/errored",
                 "config: the winner's hyperparameters at 3 significant digits"):
        assert said in footer[0]


def test_warnings_per_method(lines: list[str]) -> None:
    warnings = [line for line in lines if line.startswith("warning: ")]
    assert warnings == [
        "warning: sam's winner is the config queued first by `enqueue` (e.g. paper defaults): the search never "
        "beat it, so this method is effectively untuned",
        "warning: sam had 2 completed search trials (fewer than 3): its winner was picked among too few full runs "
        "to trust"]  # sgd: 3 completed, a searched winner, full budget: no warning
