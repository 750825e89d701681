"""`workload.compile: true`: the trial's model under torch.compile, the same steps, or a clear refusal."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from methods import build_optimizer
from tuner.cli import main
from tuner.spec import load_spec
from tuner.trial.build import build_trial
from tuner.trial.setup import TrialSetup
from tuner.workloads import WorkloadError, _compile, compile_model, create_workload
from tuner.workloads._compile import is_compiled


def _spec(tmp_path: Path, compile_: object, gpu: int = 0) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump({
        "name": "compiled", "metric": {"name": "eval/loss", "goal": "minimize"},
        "workload": {"name": "mnist_mlp", "options": {"dataset": "digits"}, "compile": compile_},
        "methods": ["sgd"], "parameters": {"lr": {"value": 0.1}},
        "budget": {"num_samples": 1, "trial_grad_evals": 20}, "resources": {"cpu": 1, "gpu": gpu},
        "storage": {"path": str(tmp_path / "results")}}))
    return path


def test_the_spec_carries_compile_to_every_trial(tmp_path: Path) -> None:
    spec = load_spec(_spec(tmp_path, True))
    assert spec.workload.compile is True
    assert spec.to_dict()["workload"]["compile"] is True
    again = tmp_path / "again.yaml"
    again.write_text(yaml.safe_dump(spec.to_dict(include_space=False)))
    assert load_spec(again).workload.compile is True
    assert load_spec(_spec(tmp_path, False)).workload.compile is False


def test_no_compiler_refuses_the_spec_with_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(_compile.shutil, "which", lambda name: None)
    path = _spec(tmp_path, True)
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert err.startswith(f"error: {path}:") and "workload.compile: torch.compile on a CPU needs a C++ compiler" in err
    # a GPU trial is judged where it runs (the submitting machine may lack what the cluster has)
    assert load_spec(_spec(tmp_path, True, gpu=1)).workload.compile is True


def test_a_workload_without_a_module_is_refused() -> None:
    class NoModel:
        name = "bare"
        model = None

    with pytest.raises(WorkloadError, match="workload.compile: workload bare has no torch.nn.Module"):
        compile_model(NoModel())


def test_missing_triton_is_named_for_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch.utils._triton

    monkeypatch.setattr(torch.utils._triton, "has_triton", lambda: False)
    assert "needs Triton" in (_compile.compile_problem(torch.device("cuda")) or "")


@pytest.mark.slow
def test_a_compiled_model_takes_the_steps_of_the_eager_one() -> None:
    """SAM (two passes) and SGD-IRE with its Fisher pass through the step's own graph, compiled and not."""
    setup = TrialSetup(workload="mnist_mlp", workload_options={"dataset": "digits"}, trial_grad_evals=30,
                       eval_every=10, seed=0, compile=True)
    for method, values in (("sam", {"lr": 0.1, "rho": 0.05}),
                           ("sgd_ire", {"lr": 0.1, "warmup": 0, "ire_interval": 2, "curvature": "fisher"})):
        compiled, opt_c, _ = build_trial(setup, {"method": method, **values})
        assert is_compiled(compiled.model)
        eager = create_workload("mnist_mlp", {"dataset": "digits"}, seed=0, device="cpu")
        opt_e = build_optimizer(eager.model, method, **{**values, "total_steps": opt_c.hparams["total_steps"]})
        assert list(compiled.model.state_dict()) == list(eager.model.state_dict())  # checkpoints unchanged
        for _ in range(6):
            loss_c = opt_c.step(compiled.closure(compiled.next_batch()))
            loss_e = opt_e.step(eager.closure(eager.next_batch()))
            torch.testing.assert_close(loss_c, loss_e, rtol=1e-4, atol=1e-5)
        for p, q in zip(compiled.model.parameters(), eager.model.parameters(), strict=True):
            torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5)
        assert opt_c.counts == opt_e.counts
        assert "diag/lambda_max" in compiled.diagnostics(opt_c)  # Hessian-vector products through it
