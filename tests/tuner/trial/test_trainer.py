"""The training loop (tuner.trial.trainer): stable report names, compute-fair budgets, paired seeds, exact resume."""

from __future__ import annotations

import math

import pytest
import torch

from methods import build_optimizer
from methods.diagnostics import grad_norm, sam_edge
from tuner.trial.lr_schedule import LrSchedule
from tuner.trial.trainer import Trainer
from tuner.workloads import create_workload

DIGITS = {"dataset": "digits", "depth": 1, "width": 32, "batch_size": 32, "diag_examples": 256}
COST = ["cost/grad_evals", "cost/fwd_passes", "cost/bwd_passes", "cost/step_time_ms", "cost/wall_s",
        "cost/train_s", "cost/peak_mem_mb"]
TIMING = {"cost/step_time_ms", "cost/wall_s", "cost/train_s", "cost/peak_mem_mb"}


@pytest.fixture(autouse=True)
def _single_thread() -> None:
    """One CPU thread, as the workload tests run (tests/tuner/workloads/conftest.py): small models train
    faster so on a shared machine."""
    torch.set_num_threads(1)


def _trainer(method: str, seed: int = 0, workload: str = "mnist_mlp", options: dict | None = None,
             **kw) -> Trainer:
    wl = create_workload(workload, DIGITS if options is None else options, seed=seed, device="cpu")
    hp = {"lr": 0.05, "rho": 0.05} if method.startswith("sam") else {"lr": 0.05}
    opt = build_optimizer(wl.model, method, pairs=wl.pairs or None, **hp)
    return Trainer(wl, opt, **kw)


def test_reports_carry_the_stable_names_and_learn() -> None:
    trainer = _trainer("sgd", eval_every=20, max_steps=60, diag_every=30)
    reports = list(trainer.run())
    assert [r["step"] for r in reports] == [20.0, 40.0, 60.0]
    for name in ["step", "train/loss", "eval/accuracy", "eval/loss", *COST]:
        assert all(math.isfinite(r[name]) for r in reports), name
    assert reports[-1]["eval/accuracy"] > 0.5
    assert reports[-1]["cost/grad_evals"] == 60 and reports[-1]["cost/fwd_passes"] == 60
    last = reports[-1]
    assert 0 < reports[0]["cost/train_s"] < last["cost/train_s"] <= last["cost/wall_s"]  # steps are a part of wall
    assert last["diag/lambda_max"] > 0
    assert "diag/sam_edge" not in last and "diag/lambda_over_edge" not in last  # mini-batch, momentum 0.9
    assert "diag/lambda_max" not in reports[0]  # first diagnostics at step 30


def test_budget_is_compute_fair_and_a_final_report_comes() -> None:
    sgd = list(_trainer("sgd", eval_every=7, max_grad_evals=40).run())
    sam = list(_trainer("sam", eval_every=7, max_grad_evals=40).run())
    assert sgd[-1]["step"] == 40 and sam[-1]["step"] == 20
    assert sam[-1]["cost/grad_evals"] == 40 and sam[-1]["cost/bwd_passes"] == 40
    assert [r["step"] for r in sam] == [7.0, 14.0, 20.0]


def _batches(trainer: Trainer, steps: int) -> list[torch.Tensor]:
    seen, next_batch = [], trainer.workload.next_batch

    def recording():
        batch = next_batch()
        seen.append(batch[0].clone() if isinstance(batch, tuple) else batch.clone())
        return batch
    trainer.workload.next_batch = recording
    list(trainer.run())
    return seen


@pytest.mark.parametrize(("workload", "options"), [("mnist_mlp", DIGITS),
                                                   ("scale_invariant", {"batch_size": 4})])
def test_same_seed_same_batches_across_methods(workload: str, options: dict) -> None:
    kw = {"workload": workload, "options": options, "eval_every": 10, "max_steps": 30}
    sgd, sam = _batches(_trainer("sgd", **kw), 30), _batches(_trainer("sam", **kw), 30)
    assert all(torch.equal(a, b) for a, b in zip(sgd, sam, strict=True))
    other = _batches(_trainer("sgd", seed=1, **kw), 30)
    assert not all(torch.equal(a, b) for a, b in zip(sgd, other, strict=True))


def _comparable(report: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in report.items() if k not in TIMING}


@pytest.mark.parametrize(("method", "workload", "options", "schedule"), [
    ("sam", "mnist_mlp", DIGITS, {}),
    ("sam", "mnist_mlp", DIGITS, {"lr_schedule": LrSchedule("cosine", warmup=0.1), "horizon": 20}),
    ("sgd", "tiny_lm", {"dropout": 0.1, "seq_len": 16, "d_model": 32, "n_layer": 1, "eval_blocks": 8}, {}),
])
def test_resume_reproduces_the_remaining_reports(method: str, workload: str, options: dict, schedule: dict) -> None:
    kw = {"workload": workload, "options": options, "eval_every": 5, "max_steps": 20, "diag_every": 10, **schedule}
    full = _trainer(method, **kw)
    reports, saved = [], None
    for report in full.run():
        reports.append(report)
        if report["step"] == 10:
            saved = full.state_dict()
    torch.manual_seed(1234)  # a fresh process would have a different global RNG
    resumed = _trainer(method, **kw)
    resumed.load_state_dict(saved)
    after = list(resumed.run())
    assert [_comparable(r) for r in after] == [_comparable(r) for r in reports[2:]]


def test_mnist_full_batch_logs_edge_of_stability_diagnostics() -> None:
    options = {"dataset": "mnist", "n_train": 500, "full_batch": True, "loss": "mse", "width": 32,
               "diag_examples": 500, "hessian_trace": True}
    wl = create_workload("mnist_mlp", options, seed=0, device="cpu")
    assert len(wl.x_train) == 500 and wl.x_train.shape[1] == 784
    opt = build_optimizer(wl.model, "sam", lr=0.05, rho=0.05, momentum=0.0, rho_schedule="linear", total_steps=20)
    final = list(Trainer(wl, opt, eval_every=10, max_steps=10).run())[-1]
    assert final["diag/lambda_max"] > 0 and final["diag/hessian_trace"] > 0 and final["diag/hessian_trace_stderr"] > 0
    assert math.isfinite(final["diag/lambda_over_edge"])
    norm = grad_norm(lambda: wl._loss(wl.model(wl.x_train), wl.y_train), model=wl.model)
    assert final["diag/sam_edge"] == pytest.approx(sam_edge(norm, 0.05, 0.05 * (1 - 10 / 20)))  # the scheduled ρ
    assert final["diag/sam_edge"] < 2 / 0.05  # SAM's edge lies below GD's 2/η
    # with momentum the formula does not hold: nothing is logged for the edge
    wl = create_workload("mnist_mlp", options, seed=0, device="cpu")
    opt = build_optimizer(wl.model, "sam", lr=0.05, rho=0.05, momentum=0.9)
    final = list(Trainer(wl, opt, eval_every=10, max_steps=10).run())[-1]
    assert final["diag/lambda_max"] > 0 and "diag/sam_edge" not in final and "diag/lambda_over_edge" not in final


@pytest.mark.parametrize(("bad", "message"), [("param", "a parameter is not finite"),
                                              ("grad", "gradient norm is not finite")])
def test_non_finite_parameter_or_gradient_stops_the_run_even_with_a_finite_loss(bad: str, message: str) -> None:
    """Divergence is caught in the step it happens, not only once the loss turns NaN."""
    from tuner.trial.trainer import Diverged

    wl = create_workload("mnist_mlp", DIGITS, seed=0, device="cpu")
    extra = torch.nn.Parameter(torch.zeros(3))  # enters the loss as 0 * sum: never changes its value
    wl.model.register_parameter("extra", extra)
    broken = {"on": False}
    extra.register_hook(lambda g: torch.full_like(g, math.nan) if broken["on"] and bad == "grad" else g)
    make_closure = wl.closure

    def closure(batch):
        inner = make_closure(batch)

        def run_it():
            loss, out = inner()
            return loss + 0.0 * extra.nan_to_num(0.0, 0.0, 0.0).sum(), out
        return run_it
    wl.closure = closure
    trainer = Trainer(wl, build_optimizer(wl.model, "sgd", lr=1e-9), eval_every=5, max_steps=20)
    run = trainer.run()
    assert next(run)["step"] == 5.0  # healthy so far
    broken["on"] = True
    if bad == "param":
        with torch.no_grad():
            extra[1] = math.inf
    reports = []
    with pytest.raises(Diverged, match=message):
        reports.extend(run)
    assert len(reports) == 1 and reports[0]["diverged"] == 1.0 and reports[0]["step"] == 6.0
    assert math.isfinite(reports[0]["train/loss"])


class _DoneEvent:
    """A CUDA event stand-in whose work is done as soon as it is recorded (`query` never waits)."""

    def record(self) -> None:
        pass

    def query(self) -> bool:
        return True


def test_cuda_divergence_is_seen_from_a_copy_of_the_flags_without_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    """CUDA's loop never reads the device between reports: the flags are copied behind the steps every
    CHECK_EVERY steps and looked at once the copy is done, so a NaN stops the run within 2 x CHECK_EVERY."""
    from methods import _device
    from tuner.trial import trainer as trainer_module
    from tuner.trial.trainer import CHECK_EVERY, Diverged

    monkeypatch.setattr(_device, "FORCE_ACCELERATOR_PATH", True)
    monkeypatch.setattr(trainer_module.torch.cuda, "Event", _DoneEvent)
    empty = torch.empty
    monkeypatch.setattr(trainer_module.torch, "empty", lambda *a, pin_memory=False, **k: empty(*a, **k))
    wl = create_workload("mnist_mlp", DIGITS, seed=0, device="cpu")
    trainer = Trainer(wl, build_optimizer(wl.model, "sgd", lr=1e-9), eval_every=1000, max_steps=200)
    trainer._peeking = True  # as on CUDA
    reads = []
    original = trainer._non_finite
    monkeypatch.setattr(trainer, "_non_finite", lambda loss, *, read: reads.append(read) or original(loss, read=read))
    run = trainer.run()
    broken_at = CHECK_EVERY + 3
    original_step = trainer._one_step

    def step() -> torch.Tensor:
        loss = original_step()
        if trainer.step == broken_at:
            with torch.no_grad():
                next(wl.model.parameters())[0, 0] = math.nan
        return loss
    monkeypatch.setattr(trainer, "_one_step", step)
    with pytest.raises(Diverged, match="loss is nan"):
        list(run)
    assert not any(reads)  # never a blocking read in the loop: only the copies
    assert broken_at < trainer.step <= broken_at + 2 * CHECK_EVERY
