"""`precision:` in the spec: the closure and the evaluation run under autocast (bf16 on this CPU), the
training passes by the optimizer, the evaluation by the trainer; fp16 is refused on a CPU."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from methods import build_optimizer
from tuner.preflight import run_preflight
from tuner.spec import SpecError, load_spec
from tuner.trial.precision import optimizer_kwargs
from tuner.trial.trainer import Trainer
from tuner.workloads import create_workload

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "own_workload"
MOONS = f"{EXAMPLE / 'my_tasks.py'}:Moons"


def _run(precision: str, optimizer_precision: str | None = None
         ) -> tuple[list[dict[str, float]], set[tuple[bool, torch.dtype]]]:
    """Reports of 40 SAM steps on the example workload, and (autocast on, output dtype) of every forward."""
    wl = create_workload(MOONS, {"width": 16}, seed=0, device="cpu")
    seen: set[tuple[bool, torch.dtype]] = set()
    forward = wl.forward

    def recording(inputs):
        out = forward(inputs)
        seen.add((torch.is_autocast_enabled("cpu"), out.dtype))
        return out
    wl.forward = recording
    opt = build_optimizer(wl.model, "sam", lr=0.1, rho=0.05, **optimizer_kwargs(optimizer_precision or precision))
    reports = list(Trainer(wl, opt, eval_every=20, max_steps=40, precision=precision).run())
    assert all(p.dtype == torch.float32 for p in wl.model.parameters())  # weights stay in float32
    return reports, seen


def test_bf16_runs_the_closure_and_evaluation_under_autocast() -> None:
    fp32, seen32 = _run("fp32")
    bf16, seen16 = _run("bf16")
    assert seen32 == {(False, torch.float32)}
    assert seen16 == {(True, torch.bfloat16)}  # training passes and evaluation alike
    assert bf16[-1]["eval/accuracy"] > 0.8 and bf16[-1]["train/loss"] < bf16[0]["train/loss"] + 0.05
    assert bf16[-1]["train/loss"] != fp32[-1]["train/loss"]  # really another precision
    assert abs(bf16[-1]["eval/loss"] - fp32[-1]["eval/loss"]) < 0.1


def test_the_spec_key_reaches_the_preflight_and_fp16_is_refused_on_a_cpu(tmp_path: Path) -> None:
    spec = yaml.safe_load((EXAMPLE / "spec.yaml").read_text())
    spec.update(workload={"name": MOONS, "options": {"width": 8}}, methods=["sgd"], confirm=None,
                parameters={"lr": {"type": "float", "low": 0.01, "high": 0.5, "log": True}},
                storage={"path": str(tmp_path)}, precision="bf16")
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    loaded = load_spec(path)
    assert loaded.precision == "bf16" and loaded.to_dict()["precision"] == "bf16"
    assert run_preflight(loaded, say=lambda _: None).configs == {"sgd": 2}
    assert load_spec(path, ["precision=null"]).precision == "fp32"
    with pytest.raises(SpecError, match=r"precision: fp16 needs a GPU .* resources.gpu is 0"):
        load_spec(path, ["precision=fp16"])
    with pytest.raises(SpecError, match=r"precision: unknown value 'fp8'"):
        load_spec(path, ["precision=fp8"])


def test_the_optimizer_gets_precision_only_when_it_is_not_fp32() -> None:
    assert optimizer_kwargs("fp32") == {}  # what a plug-in method takes
    assert optimizer_kwargs("bf16") == {"precision": "bf16"} and optimizer_kwargs("fp16") == {"precision": "fp16"}


def test_the_training_passes_are_autocast_by_the_optimizer_only() -> None:
    """The trainer autocasts its evaluation, not the closure: with an fp32 optimizer under a bf16 trainer the
    training forwards run in float32 (one place applies autocast to a pass, the optimizer, which scales fp16)."""
    _, seen = _run("bf16", optimizer_precision="fp32")
    assert seen == {(False, torch.float32), (True, torch.bfloat16)}  # training passes, evaluation


def test_the_tuner_and_methods_name_the_same_precisions() -> None:
    """`methods` imports nothing of the tuner, so it keeps its own list; the two may never drift apart."""
    from methods._precision import PRECISIONS as METHODS_PRECISIONS
    from tuner.names import PRECISIONS

    assert PRECISIONS == METHODS_PRECISIONS
