"""`perturb_sync` (issue 34, m-sharpness) is searched like any categorical hyperparameter of the SAM family."""

from __future__ import annotations

from pathlib import Path

import optuna

from tuner.hparams import trial_hparams
from tuner.preflight import preflight_points
from tuner.run.optuna_space import build_define
from tuner.spec import load_spec

SPEC = """
name: msharp
metric: {name: eval/loss, goal: minimize}
workload: {name: valley2d}
methods: [sgd, sam, sam_ire]
budget: {num_samples: 3, trial_grad_evals: 100}
parameters:
  perturb_sync: {values: [global, local]}
"""


def test_perturb_sync_is_a_categorical_of_the_sam_family_only(tmp_path: Path) -> None:
    (tmp_path / "spec.yaml").write_text(SPEC)
    spec = load_spec(tmp_path / "spec.yaml")
    for method in ("sam", "sam_ire"):
        param = spec.space[method]["perturb_sync"]
        assert param.type == "categorical" and param.values == ("global", "local")
    assert "perturb_sync" not in spec.space["sgd"]  # sgd does not perturb: the name never reaches it
    assert {point.get("perturb_sync") for point in preflight_points(spec, "sam")} == {"global", "local"}

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    define = build_define(spec, "sam")
    seen = set()
    for _ in range(12):
        config = define(study.ask())
        _, hparams, _ = trial_hparams(config, 100)
        seen.add(hparams["perturb_sync"])  # the value reaches the optimizer's hyperparameters
    assert seen == {"global", "local"}
