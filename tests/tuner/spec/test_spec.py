"""The spec loader on good specs: defaults filled, paths absolute, per-method spaces filtered."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from vision_files import data_sets

from methods import get_method
from tuner.spec import SpecError, load_spec

REPO = Path(__file__).resolve().parents[3]
SHIPPED = sorted((REPO / "search_spaces").glob("*.yaml"))

MINIMAL = """
name: tiny
metric: {name: eval/loss, goal: minimize}
workload: {name: valley2d}
methods: [sgd, sam, obar]
budget: {num_samples: 3, trial_grad_evals: 100}
"""


def _write(tmp_path: Path, text: str, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_every_shipped_spec_validates(tmp_path: Path) -> None:
    assert {p.name for p in SHIPPED} >= {
        "smoke.yaml", "sam.yaml", "bar.yaml", "ire.yaml", "fsam.yaml", "all_methods.yaml",
        "claim_balancedness.yaml", "claim_ire_valley.yaml", "claim_admire_tiny_lm.yaml", "claim_sam_edge.yaml",
        "sam_vision.yaml", "sam_cifar.yaml"}
    for path in SHIPPED:
        sets = data_sets(path, tmp_path / "cifar")  # vision: CIFAR written here, Fashion-MNIST installed
        if sets is None:
            continue
        spec = load_spec(path, sets)
        assert spec.name and spec.methods


def test_defaults_are_filled_and_paths_absolute(tmp_path: Path) -> None:
    spec = load_spec(_write(tmp_path, MINIMAL))
    assert spec.sampler.name == "tpe" and spec.sampler.seed == 0
    assert spec.scheduler.name == "asha" and spec.scheduler.time_attr == "cost/grad_evals"
    assert spec.scheduler.max_t == 100 and spec.scheduler.reduction_factor == 3
    assert spec.budget.max_concurrent_trials == 1 and spec.budget.time_s is None
    assert spec.resources.cpu == 1 and spec.resources.gpu == 0
    assert spec.max_failures == 1 and spec.confirm is None and spec.objectives == ()
    assert spec.storage_path == str(tmp_path / "results")
    assert spec.tracking_uri == f"sqlite:///{tmp_path}/results/tiny/mlflow.db"
    assert spec.workload.options == {"u0": 1.0, "v0": 0.01}
    assert spec.metric.mode == "min"


def test_space_brings_method_defaults_and_filters_by_method(tmp_path: Path) -> None:
    spec = load_spec(_write(tmp_path, MINIMAL + "parameters:\n  rho: {type: float, low: 0.02, high: 0.2}\n"))
    assert set(spec.space["sgd"]) == {"lr"}
    assert set(spec.space["sam"]) == {"lr", "rho"}
    assert spec.space["sam"]["rho"].low == 0.02  # the override, not sam's default range
    assert set(spec.space["obar"]) == {"lr", "mu0", "schedule"}


def test_base_only_names_follow_the_base(tmp_path: Path) -> None:
    spec = load_spec(_write(tmp_path, MINIMAL + "parameters:\n  momentum: {values: [0.0, 0.9]}\n"))
    assert "momentum" in spec.space["sgd"] and "momentum" in spec.space["sam"]
    assert "momentum" not in spec.space["obar"]  # obar runs on adamw: momentum never reaches it
    searched = load_spec(_write(tmp_path, MINIMAL + "parameters:\n  base: {values: [sgd, adamw]}\n"
                                "  momentum: {values: [0.0, 0.9]}\n", "b.yaml"))
    assert dict(searched.space["obar"]["momentum"].when) == {"base": ("sgd",)}


def test_when_on_a_method_hyperparameter(tmp_path: Path) -> None:
    spec = load_spec(_write(tmp_path, MINIMAL + "parameters:\n  preconditioner: {values: [none, ema_sq]}\n"
                            "  precond_beta: {type: float, low: 0.9, high: 0.999, when: {preconditioner: [ema_sq]}}\n"))
    assert list(spec.space["sam"]) == ["lr", "rho", "preconditioner", "precond_beta"]  # dependency first
    assert "preconditioner" not in spec.space["sgd"]


def test_units_and_numbers(tmp_path: Path) -> None:
    text = MINIMAL.replace("trial_grad_evals: 100}", "trial_grad_evals: 100, time: 1h30m}")
    text += "parameters:\n  lr: {type: float, low: 1e-4, high: 1e-1, log: true}\n"
    spec = load_spec(_write(tmp_path, text))
    assert spec.budget.time_s == 5400.0
    assert spec.space["sgd"]["lr"].low == 1e-4  # YAML 1.1 would read 1e-4 as a string


def test_to_dict_round_trips(tmp_path: Path) -> None:
    for path in SHIPPED:
        sets = data_sets(path, tmp_path / "cifar")
        if sets is None:
            continue
        spec = load_spec(path, sets)
        again = _write(tmp_path, yaml.safe_dump(spec.to_dict(include_space=False)), path.name)
        assert load_spec(again).to_dict() == spec.to_dict()
    full = load_spec(SHIPPED[0]).to_dict()
    assert "space" in full and yaml.safe_load(yaml.safe_dump(full)) == full


def test_workload_option_can_be_searched(tmp_path: Path) -> None:
    spec = load_spec(REPO / "search_spaces" / "claim_balancedness.yaml")
    assert all("alpha" in s for s in spec.space.values())
    assert spec.budget.num_samples == 12  # grid: 4 methods x 3 noise levels
    with pytest.raises(SpecError, match="alpha"):
        load_spec(_write(tmp_path, MINIMAL.replace("valley2d", "scale_invariant")
                         + "parameters:\n  alpha: {values: [-1.0, 0.5]}\n"))


def test_tracking_uri_forms(tmp_path: Path) -> None:
    rel = load_spec(_write(tmp_path, MINIMAL + "tracking: {uri: 'sqlite:///db/m.db'}\n"))
    assert rel.tracking_uri == f"sqlite:///{tmp_path}/db/m.db"
    http = load_spec(_write(tmp_path, MINIMAL + "tracking: {uri: 'http://127.0.0.1:5000'}\n", "h.yaml"))
    assert http.tracking_uri == "http://127.0.0.1:5000"


def test_method_defaults_respect_the_registry() -> None:
    spec = load_spec(REPO / "search_spaces" / "all_methods.yaml")
    for m, params in spec.space.items():
        assert set(params) <= get_method(m).hyperparameters | set(spec.workload.options)


def test_error_is_one_line_with_file_line_field(tmp_path: Path) -> None:
    path = _write(tmp_path, MINIMAL.replace("num_samples: 3", "num_samples: -3"))
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert str(info.value).startswith(f"{path}:6: budget.num_samples: out of range")
    assert "\n" not in str(info.value)


def test_a_spec_without_a_description_round_trips(tmp_path: Path) -> None:
    # The experiment saves to_dict(include_space=False) and `resume` loads it again.
    spec = load_spec(_write(tmp_path, MINIMAL))
    assert spec.description == ""
    again = _write(tmp_path, yaml.safe_dump(spec.to_dict(include_space=False)), "again.yaml")
    assert load_spec(again).to_dict() == spec.to_dict()
