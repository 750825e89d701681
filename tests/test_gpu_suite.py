"""benchmarks/gpu_suite.py: its table of checks, and the runner (streaming, limits, budget, unmet needs, summary) on
stand-in checks that are one-line Python processes, so that the test takes about a second."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "gpu_suite.py"


@pytest.fixture(scope="module")
def suite() -> Iterator[ModuleType]:
    spec = importlib.util.spec_from_file_location("gpu_suite", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_suite"] = module  # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop("gpu_suite", None)


def test_imports_nothing_heavy() -> None:
    code = (f"import runpy, sys; runpy.run_path({str(SCRIPT)!r}, run_name='gpu_suite'); "
            "print(sorted(m for m in ('ray', 'mlflow', 'optuna', 'torch', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_table(suite: ModuleType) -> None:
    names = [c.name for c in suite.CHECKS]
    assert names == ["bar", "trainer", "compile", "tiny_lm", "hf_lora", "ire_mask", "launches", "trial_time"]
    for check in suite.CHECKS:
        for step in (check.run, check.prep):
            if step is not None:
                assert (REPO / step.argv[0]).is_file() and step.smoke[0] == step.argv[0]
                assert "--device" not in step.argv or "{device}" in step.argv
    assert sum(c.run.limit for c in suite.CHECKS[:4]) <= suite.BUDGET_S  # the first four fit the default budget
    filled = suite.fill(("--set", "model={model}", "--set", "lora={rank: 4}"), {"model": "/m"})
    assert filled == ["--set", "model=/m", "--set", "lora={rank: 4}"]


def _py(code: str) -> tuple[str, ...]:
    return ("-c", code)


def test_runner_streams_kills_at_the_limit_skips_and_summarises(suite: ModuleType, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    Check, Step = suite.Check, suite.Step
    hang = _py("import time; print('started', flush=True); time.sleep(60)")
    checks = (
        Check("hello", Step(_py("print('hello table')"), 10, _py("print('hello smoke')"))),
        Check("hangs", Step(hang, 10, hang, 10)),
        Check("fails", Step(_py("raise SystemExit(3)"), 10, _py("raise SystemExit(3)"))),
        Check("needy", Step(_py("print('never')"), 10, _py("print('never')")), needs=("corpus",)),
        Check("prepped", Step(_py("import sys; print('with', sys.argv[1])"), 10,
                              (*_py("import sys; print('with', sys.argv[1])"), "{train}")),
              prep=Step(_py("print('prep')"), 10, _py("print('prep')"))),
        Check("too_long", Step(_py("print('never')"), 1000, _py("print('never')"), 1000)),
    )
    monkeypatch.setattr(suite, "CHECKS", checks)
    monkeypatch.setattr(suite, "SETUP", Step(_py("print('setup here')"), 10, _py("print('setup here')")))
    monkeypatch.setenv("SHARPTUNE_CACHE", str(tmp_path / "empty_cache"))  # no corpus there
    (tmp_path / "empty_cache").mkdir()
    out = tmp_path / "out"
    argv = ["--smoke", "--device", "cpu", "--out", str(out), "--staged", str(tmp_path / "none"),
            "--skip", "fails", "--limit", "hangs=1.5", "--budget-s", "100"]
    assert suite.main(argv) == 1  # a check hit its limit
    log = (out / "suite.txt").read_text()
    summary = (out / "summary.txt").read_text()
    console = capsys.readouterr().out
    assert "hello smoke" in log and "hello smoke" in console and "hello table" not in log
    assert "started" in log and "killed at its limit of 1.5 s" in log
    assert "prep" in log and any(line.startswith("with /") and line.endswith("train.txt") for line in log.splitlines())
    rows = {line.split()[0]: line for line in summary.splitlines()[summary.splitlines().index(
        next(line for line in summary.splitlines() if line.startswith("step"))) + 1:] if line.strip()}
    assert rows["setup"].split()[1:3] == ["ok", "0"]
    assert rows["hello"].split()[1:3] == ["ok", "0"]
    assert rows["hangs"].split()[1] == "limit" and 1.4 < float(rows["hangs"].split()[3]) < 10
    assert rows["needy"].split()[1] == "skipped" and "corpus" in rows["needy"]
    assert rows["prepped.prep"].split()[1] == "ok" and rows["prepped"].split()[1] == "ok"
    assert rows["too_long"].split()[1] == "skipped" and "budget left" in rows["too_long"]
    assert "fails" not in rows and summary.splitlines()[0].startswith("gpu_suite: ")
    assert "total wall time" in summary.splitlines()[-1]
