"""One path from a trial's values to its hyperparameters, the preflight that steps every branch, `--set`."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml
from e2e import ROOT, cli
from vision_files import FASHION_MISSING, data_sets

from methods import build_optimizer, get_method
from tuner.hparams import optimizer_hparams, trial_hparams
from tuner.preflight import preflight_points
from tuner.space import is_active
from tuner.spec import SpecError, load_spec

SPACES = ROOT / "search_spaces"
SHIPPED = sorted(SPACES.glob("*.yaml"))


# --- the one path ---------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["obar", "nbar"])
@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_scheduled_balancer_gets_the_trial_horizon(method: str, schedule: str) -> None:
    """The bug of the headline spec: a scheduled balancer must resolve (and build) with the trial's horizon."""
    _, hparams, _ = trial_hparams({"method": method, "schedule": schedule, "lr": 1e-3}, 1200)
    assert hparams["total_steps"] == 1200  # one gradient per step
    assert hparams["schedule"] == schedule


@pytest.mark.parametrize(("method", "values", "steps"), [
    ("lora_sam", {"rho_schedule": "cosine"}, 600),  # two gradients per step
    ("sam_ire", {"rho_schedule": "linear", "curvature": "grad_sq"}, 600),
    ("sam", {"rho_schedule": "cosine", "preconditioner": "fisher"}, 400),  # sampled-label pass: 3 per step
])
def test_horizon_counts_the_method_cost(method: str, values: dict, steps: int) -> None:
    hparams = optimizer_hparams(method, values, 1200)
    per_step = get_method(method).grad_evals_per_step(**values)
    assert hparams["total_steps"] == steps == math.ceil(1200 / per_step)


def test_an_explicit_horizon_is_kept_and_the_result_builds() -> None:
    import torch

    hparams = optimizer_hparams("obar", {"schedule": "cosine", "total_steps": 77}, 1200)
    assert hparams["total_steps"] == 77
    x, y = torch.nn.Parameter(torch.ones(3)), torch.nn.Parameter(torch.ones(3))
    opt = build_optimizer([x, y], "obar", pairs=[(x, y)], **hparams)
    assert opt.hparams["total_steps"] == 77


def test_spec_check_uses_the_trial_path(tmp_path: Path) -> None:
    """A cosine obar passes the spec check because the trial path fills the horizon, not a made-up one."""
    spec = load_spec(SPACES / "bar.yaml", ["budget.trial_grad_evals=90", "scheduler.grace_period=30"])
    assert spec.budget.trial_grad_evals == 90
    for point in preflight_points(spec, "obar"):
        _, hparams, _ = trial_hparams(point, spec.budget.trial_grad_evals)
        assert hparams["total_steps"] == 90


# --- preflight points -------------------------------------------------------------------------------
@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_points_cover_every_branch_and_both_ends(path: Path, tmp_path: Path) -> None:
    sets = data_sets(path, tmp_path / "cifar")  # a vision spec's images: CIFAR written here, Fashion-MNIST installed
    if sets is None:
        pytest.skip(FASHION_MISSING)
    spec = load_spec(path, sets)
    for method in spec.methods:
        own, defaults = spec.space[method], spec.defaults[method]
        points = preflight_points(spec, method)
        assert points and all(p["method"] == method for p in points)
        for name, p in own.items():
            seen = [pt[name] for pt in points if name in pt]
            if p.type in ("categorical", "fixed"):
                # every value that can be active somewhere (its `when:` satisfiable) is stepped once
                reachable = [v for v in p.candidates() if _reachable(method, spec, name, v)]
                assert {repr(v) for v in reachable} <= {repr(v) for v in seen}, (path.name, method, name)
            elif seen:
                assert min(seen) == pytest.approx(p.low) and max(seen) == pytest.approx(p.high), (method, name)
        for pt in points:  # never a value whose `when:` is off
            values = {k: v for k, v in pt.items() if k != "method"}
            for name in values:
                assert is_active(own[name], method, values, own, defaults)


def _reachable(method: str, spec, name: str, value) -> bool:
    from tuner.preflight import _branches

    return any(pt.get(name, object()) == value for pt in _branches(method, spec.space[method], spec.defaults[method]))


def test_points_stay_few() -> None:
    """A few configs per method, not the product of the space: the preflight must take seconds."""
    spec = load_spec(SPACES / "all_methods.yaml")
    counts = {m: len(preflight_points(spec, m)) for m in spec.methods}
    assert max(counts.values()) <= 6, counts


# --- preflight end to end ----------------------------------------------------------------------------
def _write(tmp_path: Path, **spec) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump({"storage": {"path": str(tmp_path / "results")}, **spec}))
    return path


@pytest.mark.slow
def test_preflight_fails_a_branch_the_spec_check_cannot_see(tmp_path: Path) -> None:
    """Fisher curvature needs logits: valley2d's scalar output fails on the first real step, before Ray."""
    path = _write(tmp_path, name="pf", metric={"name": "eval/loss", "goal": "minimize"},
                  workload={"name": "valley2d"}, methods=["sgd", "sam_ire"],
                  parameters={"curvature": {"type": "categorical", "values": ["grad_sq", "fisher"]}},
                  budget={"num_samples": 2, "trial_grad_evals": 50})
    run = cli("run", str(path))
    assert run.returncode == 2, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in run.stderr
    assert str(path) in lines[0] and "method sam_ire" in lines[0] and "curvature: 'fisher'" in lines[0]
    assert not (tmp_path / "results").exists()  # nothing started, nothing written
    skipped = cli("validate", str(path), "--no-preflight")
    assert skipped.returncode == 0 and "preflight: " not in skipped.stdout
    fixed = cli("validate", str(path), "--set", "parameters.curvature.values=[grad_sq]")
    assert fixed.returncode == 0, fixed.stderr
    assert "preflight: " in fixed.stdout and "took one step each on valley2d" in fixed.stdout


# --- --set ---------------------------------------------------------------------------------------
def test_overrides_are_validated_like_the_file() -> None:
    spec = load_spec(SPACES / "smoke.yaml", ["budget.trial_grad_evals=60", "budget.num_samples=8",
                                             "parameters.lr.high=0.3", "confirm.top_k=2"])
    assert (spec.budget.trial_grad_evals, spec.budget.num_samples) == (60, 8)
    assert spec.space["sgd"]["lr"].high == 0.3 and spec.confirm is not None and spec.confirm.top_k == 2
    assert spec.to_dict(include_space=False)["budget"]["trial_grad_evals"] == 60  # what the experiment saves
    with pytest.raises(SpecError, match=r"budget\.trial_grad_evals: out of range: 0 \(from --set"):
        load_spec(SPACES / "smoke.yaml", ["budget.trial_grad_evals=0"])
    with pytest.raises(SpecError, match=r"budget\.nope: unknown key 'nope' \(from --set budget\.nope=3\)"):
        load_spec(SPACES / "smoke.yaml", ["budget.nope=3"])
    with pytest.raises(SpecError, match="bad override 'budget'"):
        load_spec(SPACES / "smoke.yaml", ["budget"])
    with pytest.raises(SpecError, match="methods is a list, not a mapping"):
        load_spec(SPACES / "smoke.yaml", ["methods.x=1"])


def test_set_on_the_command_line_exits_2_naming_the_key() -> None:
    run = cli("validate", str(SPACES / "smoke.yaml"), "--no-preflight", "--set", "budget.eval_every=abc")
    assert run.returncode == 2
    assert run.stderr.count("\n") == 1 and "budget.eval_every" in run.stderr and "--set" in run.stderr
    ok = cli("validate", str(SPACES / "smoke.yaml"), "--no-preflight", "--set", "budget.num_samples=3")
    assert ok.returncode == 0 and "num_samples: 3" in ok.stdout
