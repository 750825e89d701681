"""`TrialSetup`: built once from the spec, frozen, pickled by Ray, plain data both ways; the scheduler's clock."""

from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path

import pytest
from vision_files import FASHION_MISSING, data_sets

from tuner.names import GRAD_EVALS
from tuner.spec import load_spec, trial_setup
from tuner.trial.setup import TrialSetup

REPO = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO / "search_spaces").glob("*.yaml")))
def test_the_setup_of_every_shipped_spec_round_trips(name: str, tmp_path: Path) -> None:
    sets = data_sets(REPO / "search_spaces" / name, tmp_path / "cifar")
    if sets is None:
        pytest.skip(FASHION_MISSING)
    spec = load_spec(REPO / "search_spaces" / name, sets)
    setup = trial_setup(spec)
    assert pickle.loads(pickle.dumps(setup)) == setup  # what tune.with_parameters does with it
    assert TrialSetup.from_dict(setup.to_dict()) == setup
    with pytest.raises(dataclasses.FrozenInstanceError):
        setup.seed = 1  # type: ignore[misc]
    assert setup.eval_plan is not None and setup.eval_plan.clock == spec.scheduler.clock
    assert (setup.trial_grad_evals, setup.precision, setup.workload) == (
        spec.budget.trial_grad_evals, spec.precision, spec.workload.name)
    assert spec.scheduler.name in ("asha", "fifo") or setup.eval_plan.full_at is None


def test_fifo_runs_on_the_budget_counter_and_reads_only_the_end() -> None:
    spec = load_spec(REPO / "search_spaces" / "smoke.yaml", ["scheduler={name: fifo}"])
    assert spec.scheduler.clock == GRAD_EVALS and spec.scheduler.read_at() == ()
    assert trial_setup(spec).eval_plan.full_at == ()


def test_from_dict_refuses_unknown_keys() -> None:
    with pytest.raises(ValueError, match="unknown keys"):
        TrialSetup.from_dict({"workload": "valley2d", "workload_options": {}, "trial_grad_evals": 10,
                              "eval_every": 5, "epochs": 3})
