"""benchmarks/gpu_check.py, trial_time.py, vision_step.py and data_parallel.py: their option parsing, that they
import no Ray, MLflow or Optuna (a GPU machine may lack them), that trial_time's restated evaluation plan is the
trainable's, and a CPU smoke run of each on a toy (seconds). Figures are never asserted."""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch
import yaml
from vision_files import FASHION_MISSING, data_sets, write_cifar

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = ("gpu_check", "trial_time", "bar_toys", "vision_step", "data_parallel")


def load(name: str) -> ModuleType:
    path = REPO / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def gpu_check() -> ModuleType:
    return load("gpu_check")


@pytest.fixture(scope="module")
def trial_time() -> ModuleType:
    return load("trial_time")


@pytest.mark.parametrize("name", SCRIPTS)
def test_imports_no_ray_mlflow_optuna(name: str) -> None:
    probe = (f"import runpy, sys; runpy.run_path({str(REPO / 'benchmarks' / (name + '.py'))!r}, run_name='x'); "
             "print(sorted({m.split('.')[0] for m in sys.modules} & {'ray', 'mlflow', 'optuna'}))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_gpu_check_options(gpu_check: ModuleType) -> None:
    assert gpu_check.parse_sets(["k_shot=null", "layers=6", "target_modules=[query, key]"]) == \
        {"k_shot": None, "layers": 6, "target_modules": ["query", "key"]}
    bar = gpu_check.bar_workload()
    assert bar[0] == "lora_text" and gpu_check.workload_options("lora_text", {"layers": 6}) == {**bar[1], "layers": 6}
    assert gpu_check.workload_options("tiny_lm", {"n_layer": 24}) == {"n_layer": 24}
    assert [gpu_check.rounded_up(s, 10) for s in (1, 10, 11)] == [10, 10, 20]
    assert gpu_check.grad_eval_limit("sam", {}) == 2.0
    assert gpu_check.preset_hparams("sgd_ire", 5) == {"warmup": 0, "ire_interval": 5}
    assert "sgd" in gpu_check.presets(None) and "gsam" not in gpu_check.presets(None)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal without CUDA")
def test_gpu_check_without_cuda_exits_1(gpu_check: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    assert gpu_check.main([]) == 1
    assert capsys.readouterr().err.count("\n") == 1


def test_gpu_check_smoke_on_cpu(gpu_check: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--device", "cpu", "--workload", "mnist_mlp", "--set", "dataset=digits", "--set", "depth=1",
            "--set", "width=16", "--methods", "sgd,sam,sgd_ire,nbar", "--steps", "2", "--rounds", "2", "--trainer"]
    assert gpu_check.main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("gpu_check: CPU") and "aten ops/step" in lines[1]
    assert [ln.split()[0] for ln in lines[2:6]] == ["sgd", "sam", "sgd_ire", "nbar"]
    assert "skipped" in lines[5] and lines[-1].startswith("total wall time")


def test_vision_step_smoke_prints_the_data_and_model_split(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    write_cifar(tmp_path)
    argv = ["--set", "dataset=cifar10", "--set", f"root={tmp_path}", "--set", "batch_size=8", "--set", "cutout=8",
            "--steps", "2", "--warmup", "1", "--method", "sam"]
    assert load("vision_step").main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("vision_step: cifar10 cnn batch 8") and "sam on cpu" in lines[0]
    assert lines[1].startswith("data ") and lines[1].endswith("% of the step")


def test_data_parallel_smoke_prints_one_row_per_method() -> None:
    """Its own process: the spawned workers import the script by its path, which a module loaded by `load` lacks."""
    argv = [sys.executable, str(REPO / "benchmarks" / "data_parallel.py"), "--quick", "--rounds", "1", "--steps", "2",
            "--methods", "sgd,sam,sam:local", "--set", "width=16", "--set", "batch_size=8"]
    out = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.splitlines()
    assert lines[0].startswith("data_parallel: mnist_mlp") and "global batch 8, 2 gloo workers" in lines[0]
    rows = {ln.split()[0]: ln.split()[5] for ln in lines[3:6]}
    assert rows == {"sgd": "1", "sam": "2", "sam:local": "1"}  # all-reduces a step: one per gradient pass
    assert lines[-1].startswith("total wall time")


@pytest.mark.parametrize("spec", sorted(p.name for p in (REPO / "search_spaces").glob("*.yaml")))
@pytest.mark.parametrize("grad_evals", [None, 1200])
def test_trial_time_plan_is_the_trainables(trial_time: ModuleType, spec: str, grad_evals: int | None,
                                           tmp_path: Path) -> None:
    from tuner.spec import load_spec, trial_setup

    sets = data_sets(REPO / "search_spaces" / spec, tmp_path / "cifar")
    if sets is None:
        pytest.skip(FASHION_MISSING)
    if grad_evals is not None:
        sets.append(f"budget.trial_grad_evals={grad_evals}")
        grace = ((yaml.safe_load((REPO / "search_spaces" / spec).read_text()).get("scheduler") or {})
                 .get("grace_period", 0))
        sets += [f"scheduler.grace_period={grad_evals // 4}"] if grace > grad_evals else []  # a GPU spec's rungs
    loaded = load_spec(REPO / "search_spaces" / spec, sets)
    assert trial_time.eval_plan(loaded) == trial_setup(loaded).eval_plan


def test_trial_time_smoke_and_plan_counts(trial_time: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--spec", "smoke.yaml", "--method", "sam", "--grad-evals", "120", "--device", "cpu", "--project", "240"]
    trial_time.main(args)
    out = capsys.readouterr().out
    assert "optimizer steps" in out and "full evaluations" in out and out.rstrip().splitlines()[-1].startswith(
        "total wall time")
    # the replayed plan counts what the trial ran
    namespace = argparse.Namespace(spec="smoke.yaml", workload=None, sets=[], method="sam", grad_evals=120, lr=1e-3,
                                   device="cpu", precision=None, threads=None, legacy=False)
    setup = trial_time.trial_setup(namespace)
    phases = trial_time.Phases()
    workload = trial_time.create_workload(setup.workload, setup.options, seed=0, device="cpu")
    trial_time.run_trial(setup, workload, phases)
    counts = trial_time.plan_counts(setup, workload.eval_subset is not None)
    assert {k: phases.counts.get(k, 0) for k in counts} == counts


def test_bar_toys_loop_is_the_methods_presets_and_sgd_keeps_balancedness() -> None:
    """benchmarks/bar_toys.py: its numpy nBAR/oBAR are methods' presets (the figure shows our algorithm), and
    on a short run SAM moves |D| more than SGD does (the script's claims, small)."""
    toys = load("bar_toys")
    assert toys.check_against_methods("nop", "nbar", 0.1, steps=300) < 1e-12
    assert toys.check_against_methods("op", "obar", 0.1, steps=300) < 1e-12
    start = float(abs((toys.X0 ** 2).sum() - (9 * toys.X0 ** 2).sum()))
    sgd = toys.run("nop", "sgd", 2000, 1, 0.1, 1000)[-1]
    sam = toys.run("nop", "sam", 2000, 1, 0.1, 1000)[-1]
    assert float(abs(sgd - start).max()) < 0.01 < float((start - sam).min())
