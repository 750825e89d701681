"""The trial's lr schedule: the lr of every step against a hand-written reference, for every method, over a
resume, and a constant schedule that leaves training bit-identical."""

from __future__ import annotations

import math

import pytest
import torch

from methods import build_optimizer, list_methods
from tuner.hparams import horizon_steps
from tuner.trial.build import trial_horizon
from tuner.trial.lr_schedule import LrSchedule
from tuner.trial.setup import TrialSetup
from tuner.trial.trainer import Trainer
from tuner.workloads import create_workload

DIGITS = {"dataset": "digits", "depth": 1, "width": 16, "batch_size": 16, "diag_examples": 64}
LR = 0.1


def _reference(name: str, steps: int, warm: int) -> list[float]:
    """The lrs written out: t/W during the warm-up, then the shape over the remaining T - W steps."""
    out = []
    for t in range(steps):
        if t < warm:
            out.append(LR * t / warm)
        elif name == "cosine":
            out.append(LR * 0.5 * (1 + math.cos(math.pi * (t - warm) / (steps - warm))))
        else:
            out.append(LR * (1 - (t - warm) / (steps - warm)))
    return out


def test_the_reference_by_hand() -> None:
    """A few values worked out on paper, so the reference above is not the code's own formula twice."""
    cosine, linear = _reference("cosine", 10, 2), _reference("linear", 10, 2)
    assert cosine[:3] == [0.0, 0.05, 0.1] and cosine[6] == pytest.approx(0.05) and cosine[9] < 0.004
    assert linear[:3] == [0.0, 0.05, 0.1] and linear[6] == pytest.approx(0.05) and linear[9] == pytest.approx(0.0125)
    assert LrSchedule("cosine").factor(5, 10) == pytest.approx(0.5)  # the papers' ½(1 + cos(πt/T)) at t = T/2


def _recorded(trainer: Trainer) -> list[tuple[float, float]]:
    """(the method's group lr, its base optimizer's group lr) as each step draws its batch, just before
    `optimizer.step` (left alone: `LambdaLR` wraps it)."""
    seen: list[tuple[float, float]] = []
    opt, next_batch = trainer.optimizer, trainer.workload.next_batch

    def recording():
        seen.append((opt.param_groups[0]["lr"], opt.base.param_groups[0]["lr"]))
        return next_batch()
    trainer.workload.next_batch = recording
    return seen


def _trainer(method: str, schedule: LrSchedule, grad_evals: int, **kw) -> Trainer:
    info = next(m for m in list_methods() if m.name == method)
    name, options = ("scale_invariant", {"batch_size": 4}) if info.needs_pairs else ("mnist_mlp", DIGITS)
    wl = create_workload(name, options, seed=0, device="cpu")
    hp = {k: v for k, v in {"lr": LR, "curvature": "grad_sq", "warmup": 0}.items() if k in info.hyperparameters}
    opt = build_optimizer(wl.model, method, pairs=wl.pairs or None, **hp)
    horizon = horizon_steps(method, hp, grad_evals)
    return Trainer(wl, opt, eval_every=4, max_grad_evals=grad_evals, lr_schedule=schedule, horizon=horizon, **kw)


@pytest.mark.parametrize("name", ["cosine", "linear"])
def test_each_step_gets_the_reference_lr(name: str) -> None:
    trainer = _trainer("sam", LrSchedule(name, warmup=0.2), grad_evals=20)  # SAM: 2 grad evals a step, 10 steps
    seen = _recorded(trainer)
    list(trainer.run())
    assert trainer.step == 10
    assert [a for a, _ in seen] == pytest.approx(_reference(name, 10, 2), abs=1e-15)
    assert [a for a, b in seen] == [b for _, b in seen]  # the base optimizer steps with the same lr


@pytest.mark.parametrize("method", [m.name for m in list_methods()])
def test_every_method_steps_with_the_scheduled_lr(method: str) -> None:
    """Whatever a step costs (1, 2 or more grad evals), the schedule spans the trial's steps, in the groups
    the method shares with its base optimizer (BAR's η_t and IRE's κ decay read them there)."""
    trainer = _trainer(method, LrSchedule("linear"), grad_evals=24)
    seen = _recorded(trainer)
    list(trainer.run())
    assert trainer.step == len(seen) and len(seen) >= 4
    horizon = trainer.lr_scheduler.lr_lambdas[0].keywords["horizon"]
    assert [a for a, _ in seen] == pytest.approx([LR * (1 - t / horizon) for t in range(len(seen))], abs=1e-15)
    assert [a for a, b in seen] == [b for _, b in seen]


def test_a_resumed_trial_continues_with_the_same_lrs() -> None:
    schedule = LrSchedule("cosine", warmup=0.25)
    full = _trainer("sam", schedule, grad_evals=32)
    lrs = _recorded(full)
    saved = None
    for report in full.run():
        if report["step"] == 8:
            saved = full.state_dict()
    resumed = _trainer("sam", schedule, grad_evals=32)
    resumed.load_state_dict(saved)
    after = _recorded(resumed)
    list(resumed.run())
    assert after == lrs[8:] and len(after) == 8  # exactly equal: the same floats, step by step
    assert [a for a, _ in lrs] == pytest.approx(_reference("cosine", 16, 4), abs=1e-15)


def _params_after(schedule: LrSchedule | None) -> list[torch.Tensor]:
    wl = create_workload("mnist_mlp", DIGITS, seed=0, device="cpu")
    opt = build_optimizer(wl.model, "sam", lr=LR, rho=0.05)
    kw = {} if schedule is None else {"lr_schedule": schedule, "horizon": 10}
    trainer = Trainer(wl, opt, eval_every=5, max_steps=10, **kw)
    list(trainer.run())
    return [p.detach().clone() for p in wl.model.parameters()]


def test_a_constant_schedule_leaves_training_bit_identical() -> None:
    before = _params_after(None)
    assert all(torch.equal(a, b) for a, b in zip(before, _params_after(LrSchedule()), strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(before, _params_after(LrSchedule("cosine")), strict=True))


def test_a_schedule_needs_the_horizon() -> None:
    wl = create_workload("mnist_mlp", DIGITS, seed=0, device="cpu")
    with pytest.raises(ValueError, match="horizon"):
        Trainer(wl, build_optimizer(wl.model, "sgd", lr=LR), eval_every=5, max_steps=10,
                lr_schedule=LrSchedule("cosine"))


def test_the_trial_horizon_is_the_methods_total_steps() -> None:
    """The lr schedule spans the same steps as the method's own schedules (`total_steps`, tuner.hparams)."""
    setup = TrialSetup(workload="mnist_mlp", workload_options=DIGITS, trial_grad_evals=600, eval_every=20,
                       lr_schedule=LrSchedule("cosine"))
    assert trial_horizon(setup, {"method": "sam", "lr": 0.1}) == 300
    assert trial_horizon(setup, {"method": "obar", "lr": 0.1, "schedule": "cosine"}) == horizon_steps(
        "obar", {"lr": 0.1, "schedule": "cosine"}, 600)
    assert TrialSetup.from_dict(setup.to_dict()) == setup


@pytest.mark.parametrize(("bad", "message"), [({"name": "step"}, "lr_schedule.name"),
                                              ({"warmup": 1.0}, "lr_schedule.warmup")])
def test_bad_schedules_name_the_field(bad: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LrSchedule(**bad)
