"""Confirmation stress axes: any workload option, checked at load; `label_noise:` is an alias."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from tuner.run.experiment import Experiment
from tuner.spec import SpecError, load_spec

SPEC = {"name": "stress", "description": "stress axes", "metric": {"name": "eval/loss", "goal": "minimize"},
        "workload": {"name": "scale_invariant"}, "methods": ["sgd", "sam"],
        "budget": {"num_samples": 2, "trial_grad_evals": 20}}


def _load(tmp_path: Path, confirm: dict, workload: dict | None = None):
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump({**SPEC, "confirm": confirm, "workload": workload or SPEC["workload"]}))
    return load_spec(path)


def test_stress_takes_any_option_and_every_combination_is_confirmed(tmp_path: Path) -> None:
    spec = _load(tmp_path, {"top_k": 1, "seeds": [0, 1], "stress": {"init_scale": [0.5, 1], "alpha": [0.5, 2.0]}})
    assert spec.confirm.stress == {"init_scale": (0.5, 1.0), "alpha": (0.5, 2.0)}  # typed like the option
    assert len(spec.confirm.conditions()) == 4
    again = tmp_path / "again.yaml"  # what `run` saves and `resume` loads
    again.write_text(yaml.safe_dump(spec.to_dict(include_space=False)))
    assert load_spec(again).confirm.stress == spec.confirm.stress
    results = [SimpleNamespace(metrics={"eval/loss": loss, "sharptune/complete": 1.0, "trial_id": tid}, error=None,
                               config={"method": method, "lr": lr})
               for method, loss, lr, tid in [("sgd", 0.5, 0.1, "a"), ("sgd", 0.2, 0.3, "b"), ("sam", 0.4, 0.2, "c")]]
    points = Experiment(spec).confirm_points(results)
    assert len(points) == Experiment(spec).confirm_runs_at_most() == 2 * 2 * 4
    assert {(p["method"], p["lr"]) for p in points} == {("sgd", 0.3), ("sam", 0.2)}  # the best of each
    assert {(p["_seed"], p["init_scale"], p["alpha"]) for p in points if p["method"] == "sam"} == {
        (s, n, a) for s in (0, 1) for n in (0.5, 1.0) for a in (0.5, 2.0)}


def test_a_method_whose_trials_were_all_pruned_is_confirmed_with_its_furthest_config(tmp_path: Path) -> None:
    """ASHA compares methods early, at equal grad evals: it can stop every trial of a 2-gradient method.
    The confirmation still runs that method's best config to the end, so the comparison keeps it."""
    spec = _load(tmp_path, {"top_k": 1, "seeds": [0, 1]})
    done = {"sharptune/complete": 1.0}
    results = [SimpleNamespace(metrics={"eval/loss": loss, "cost/grad_evals": evals, "trial_id": tid, **extra},
                               error=None, config={"method": method, "lr": lr})
               for method, loss, evals, lr, tid, extra in [
                   ("sgd", 0.5, 20, 0.1, "a", done), ("sgd", 0.1, 6, 0.3, "b", {}),  # sgd: the completed one
                   ("sam", 0.3, 6, 0.2, "c", {}), ("sam", 0.6, 12, 0.4, "d", {}),  # sam: pruned only
                   ("sam", float("nan"), 12, 0.5, "e", {})]]
    points = Experiment(spec).confirm_points(results)
    assert {(p["method"], p["lr"], p["_source"]) for p in points} == {("sgd", 0.1, "a"), ("sam", 0.4, "d")}
    assert len(points) == Experiment(spec).confirm_runs_at_most() == 2 * 2


def test_label_noise_key_is_an_alias_of_the_stress_axis(tmp_path: Path) -> None:
    moons = {"name": str(Path(__file__).resolve().parents[3] / "examples/own_workload/my_tasks.py") + ":Moons"}
    spec = _load(tmp_path, {"seeds": [0], "label_noise": [0.0, 0.2]}, moons)
    assert spec.confirm.stress == {"label_noise": (0.0, 0.2)} and spec.confirm.label_noise == (0.0, 0.2)


@pytest.mark.parametrize(("confirm", "expected"), [
    ({"stress": {"label_noise": [0.0, 0.2]}}, "confirm.stress.label_noise: workload scale_invariant has no option "
                                              "'label_noise' (allowed: "),
    ({"label_noise": [0.1]}, "confirm.label_noise: workload scale_invariant rejects label_noise 0.1"),
    ({"stress": {"init_scale": [-1.0]}}, "confirm.stress.init_scale: workload scale_invariant rejects init_scale -1.0"),
    ({"stress": [0.1]}, "confirm.stress: must be a mapping"),
])
def test_an_axis_the_workload_lacks_is_a_spec_error(tmp_path: Path, confirm: dict, expected: str) -> None:
    with pytest.raises(SpecError, match="^" + str(tmp_path / "spec.yaml") + r":\d+: ") as err:
        _load(tmp_path, confirm)
    assert expected in str(err.value), str(err.value)
