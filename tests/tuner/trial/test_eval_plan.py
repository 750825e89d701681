"""Evaluation where it is used: the full split exactly where ASHA reads the metric, a subset between.

ASHA (Ray 2.60) decides on the first report whose `time_attr` reaches each rung, and ignores a report
whose metric is missing; Ray itself insists on the metric in every report, so reports that do not
evaluate carry NaN, named in `sharptune/filled`, and are never the ones a rung reads.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from methods import build_optimizer
from tuner.names import CURVE_POINTS, DIAG_POINTS, FILLED_KEY
from tuner.spec import load_spec, trial_setup
from tuner.trial.protocol import with_required
from tuner.trial.trainer import EvalPlan, Trainer
from tuner.workloads import create_workload

REPO = Path(__file__).resolve().parents[3]
TINY_LM = {"seq_len": 16, "d_model": 32, "n_layer": 1, "n_head": 2, "eval_blocks": 80, "batch_size": 4}


@pytest.mark.parametrize("name", ["bar.yaml", "all_methods.yaml", "smoke.yaml", "sam.yaml"])
def test_plan_holds_every_asha_rung_and_max_t(name: str) -> None:
    from ray.tune.schedulers import ASHAScheduler

    spec = load_spec(REPO / "search_spaces" / name)
    s = spec.scheduler
    plan = trial_setup(spec).eval_plan
    if s.name != "asha":
        pytest.skip(f"{name} uses {s.name}")
    asha = ASHAScheduler(time_attr=s.time_attr, metric=spec.metric.name, mode=spec.metric.mode, max_t=s.max_t,
                         grace_period=s.grace_period, reduction_factor=s.reduction_factor)
    milestones = {float(m) for bracket in asha._brackets for m, _ in bracket._rungs}
    assert plan.clock == s.time_attr
    assert milestones | {float(s.max_t)} <= set(plan.full_at)
    assert plan.curve_every == spec.budget.trial_grad_evals / CURVE_POINTS
    assert plan.diag_every == spec.budget.trial_grad_evals / DIAG_POINTS


def test_budget_sets_how_many_curve_and_diagnostics_points_a_trial_has() -> None:
    """Dense λ_max or loss curves are a spec key away; they reach the trial's plan, and the saved spec."""
    spec = load_spec(REPO / "search_spaces" / "sam.yaml",
                     ["budget.trial_grad_evals=600", "budget.curve_points=20", "budget.diag_points=12"])
    plan = trial_setup(spec).eval_plan
    assert (plan.curve_every, plan.diag_every) == (600 / 20, 600 / 12)
    assert (spec.budget.to_dict()["curve_points"], spec.budget.to_dict()["diag_points"]) == (20, 12)
    defaults = load_spec(REPO / "search_spaces" / "sam.yaml").budget
    assert (defaults.curve_points, defaults.diag_points) == (CURVE_POINTS, DIAG_POINTS)


def _tiny_lm_trainer(method: str, plan: EvalPlan | None, **kw) -> Trainer:
    wl = create_workload("tiny_lm", TINY_LM, seed=0, device="cpu")
    opt = build_optimizer(wl.model, method, lr=0.01, **({"rho": 0.05} if method == "sam" else {}))
    return Trainer(wl, opt, plan=plan, **kw)


def test_full_split_at_the_points_subset_at_curve_points_nothing_between() -> None:
    plan = EvalPlan(clock="cost/grad_evals", full_at=(12.0, 36.0), curve_every=16.0)
    reports = list(_tiny_lm_trainer("sam", plan, eval_every=2, max_grad_evals=48).run())  # 4 grad evals a report
    full = [r["cost/grad_evals"] for r in reports if "eval/loss" in r]
    subset = [r["cost/grad_evals"] for r in reports if "eval_subset/loss" in r]
    assert full == [12.0, 36.0, 48.0]  # the first report at or past each point, and the last
    assert subset == [16.0, 32.0]  # 48 is a curve point too, evaluated in full
    assert all(r["eval_subset/examples"] == 64 for r in reports if "eval_subset/loss" in r)
    assert all(math.isfinite(r["train/loss"]) for r in reports)
    # the subset is the first blocks of the split: the full split's value differs, the subset's is reproducible
    wl = create_workload("tiny_lm", TINY_LM, seed=0, device="cpu")
    assert wl.evaluate(subset=True)["eval/loss"] != wl.evaluate()["eval/loss"]


def test_diagnostics_run_on_their_own_sparser_clock() -> None:
    """A power iteration costs tens of gradients: diagnostics run where the full split is evaluated and
    at the plan's diagnostics points, not at every curve point."""
    plan = EvalPlan(clock="cost/grad_evals", full_at=(12.0,), curve_every=8.0, diag_every=24.0)
    trainer = _tiny_lm_trainer("sam", plan, eval_every=1, max_grad_evals=48)  # 2 grad evals a report
    at: list[float] = []
    trainer.workload.diagnostics = lambda optimizer: at.append(optimizer.counts["grad_evals"]) or {"diag/x": 1.0}
    reports = list(trainer.run())
    subset = [r["cost/grad_evals"] for r in reports if "eval_subset/loss" in r]
    assert subset == [8.0, 16.0, 24.0, 32.0, 40.0]
    assert at == [12.0, 24.0, 48.0]  # the full point, the diagnostics point, the end
    assert all(r["diag/x"] == 1.0 for r in reports if r["cost/grad_evals"] >= 12.0)


def test_without_a_plan_every_report_evaluates_the_full_split() -> None:
    reports = list(_tiny_lm_trainer("sgd", None, eval_every=5, max_steps=15).run())
    assert all("eval/loss" in r and "eval_subset/loss" not in r for r in reports)


def test_resume_keeps_the_plan_clock() -> None:
    plan = EvalPlan(clock="step", full_at=(7.0,), curve_every=10.0)
    whole = _tiny_lm_trainer("sgd", plan, eval_every=3, max_steps=15)
    reports, saved = [], None
    for report in whole.run():
        reports.append(report)
        if report["step"] == 6:
            saved = whole.state_dict()
    resumed = _tiny_lm_trainer("sgd", plan, eval_every=3, max_steps=15)
    resumed.load_state_dict(saved)
    after = list(resumed.run())
    keys = [sorted(k for k in r if k.startswith("eval")) for r in after]
    assert keys == [sorted(k for k in r if k.startswith("eval")) for r in reports[2:]]
    assert [r["eval/loss"] for r in after if "eval/loss" in r] == \
        [r["eval/loss"] for r in reports[2:] if "eval/loss" in r]


def test_required_metrics_missing_from_a_report_are_nan_and_named() -> None:
    metrics = with_required({"cost/grad_evals": 5.0}, ("cost/grad_evals", "eval/accuracy"))
    assert math.isnan(metrics["eval/accuracy"]) and metrics[FILLED_KEY] == "eval/accuracy"
    assert FILLED_KEY not in with_required({"eval/accuracy": 0.5}, ("eval/accuracy",))


def test_asha_reads_only_full_split_reports() -> None:
    """Fed the reports a planned trial makes, ASHA records at each rung a value computed on the full split."""
    from ray.tune.schedulers import ASHAScheduler

    asha = ASHAScheduler(time_attr="cost/grad_evals", metric="eval/loss", mode="min", max_t=48, grace_period=12,
                         reduction_factor=3)
    plan = EvalPlan(clock="cost/grad_evals", full_at=(12.0, 36.0, 48.0), curve_every=16.0)

    class FakeTrial:
        trial_id = "t"
    asha.on_trial_add(None, FakeTrial())
    reports = list(_tiny_lm_trainer("sam", plan, eval_every=2, max_grad_evals=48).run())
    for report in reports:
        asha.on_trial_result(None, FakeTrial(), with_required(report, ("eval/loss", "cost/grad_evals")))
    recorded = {m: r["t"] for m, r in asha._brackets[0]._rungs if "t" in r}
    full = {r["cost/grad_evals"]: r["eval/loss"] for r in reports if "eval/loss" in r}
    assert recorded == {12: -full[12.0], 36: -full[36.0]}
