"""The papers' toy problems behave as docs/METHODS.md says (valley: GD stalls, IRE escapes; BAR: |D| drift)."""

from __future__ import annotations

import pytest

from methods import build_optimizer
from tuner.trial.trainer import Diverged, Trainer
from tuner.workloads import create_workload


def _final(workload: str, options: dict, method: str, steps: int, **hp) -> dict[str, float]:
    wl = create_workload(workload, options, seed=0, device="cpu")
    opt = build_optimizer(wl.model, method, pairs=wl.pairs or None, **hp)
    reports = list(Trainer(wl, opt, eval_every=steps, max_steps=steps).run())
    return reports[-1]


def test_valley_gd_lr1_barely_moves_u() -> None:
    report = _final("valley2d", {}, "sgd", 2000, lr=1.0, momentum=0.0)
    assert 0.95 < report["diag/u"] <= 1.0
    assert report["eval/loss"] < 1e-6


def test_valley_gd_lr2_diverges() -> None:
    wl = create_workload("valley2d", {}, seed=0, device="cpu")
    trainer = Trainer(wl, build_optimizer(wl.model, "sgd", lr=2.0, momentum=0.0), eval_every=100, max_steps=2000)
    reports = []
    with pytest.raises(Diverged):
        for report in trainer.run():
            reports.append(report)
    assert reports[-1]["diverged"] == 1.0 and trainer.step < 2000


def test_valley_ire_reaches_the_flat_minimum() -> None:
    report = _final("valley2d", {}, "sgd_ire", 2000, lr=1.0, momentum=0.0, kappa=9000.0, gamma=0.5,
                    curvature="grad_sq", ire_interval=100_000)
    assert abs(report["diag/u"]) < 0.05


def _gap(method: str, alpha: float = 1.0, **hp) -> tuple[float, float]:
    """|D| at the start and after 800 steps on the imbalanced matrix toy with noise level `alpha`."""
    options = {"variant": "matrix", "dim": 5, "alpha": alpha, "init_imbalance": 2.0, "init_scale": 1.0}
    wl = create_workload("scale_invariant", options, seed=0, device="cpu")
    start = wl.diagnostics(None)["diag/balancedness_max"]
    opt = build_optimizer(wl.model, method, pairs=wl.pairs, **hp)
    reports = list(Trainer(wl, opt, eval_every=200, max_steps=800).run())
    assert all("diag/balancedness_mean" in r for r in reports)
    return start, reports[-1]["diag/balancedness_max"]


def test_scale_invariant_sam_shrinks_balancedness_sgd_keeps_it() -> None:
    sgd_hp = {"lr": 0.005, "momentum": 0.0}
    start, sgd = _gap("sgd", **sgd_hp)
    _, sam = _gap("sam", rho=0.2, **sgd_hp)
    _, sam_quiet = _gap("sam", alpha=0.1, rho=0.2, **sgd_hp)
    assert abs(sgd - start) < 0.15 * start  # SGD: D almost constant
    assert sam < 0.3 * start  # SAM: |D| driven toward 0 ...
    assert sam < sam_quiet < start  # ... faster with more noise
    for bar in ("obar", "nbar"):
        _, moved = _gap(bar, base="sgd", mu0=1.0, **sgd_hp)
        assert moved < 0.3 * start  # BAR drifts like SAM at SGD's cost


def test_scale_invariant_vector_variant_trains() -> None:
    options = {"variant": "vector", "dim": 8, "alpha": 0.1}
    report = _final("scale_invariant", options, "sgd", 300, lr=0.1, momentum=0.0)
    assert report["eval/loss"] < 0.05
