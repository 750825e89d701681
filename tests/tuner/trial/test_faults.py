"""The test-only fault: it kills the trial's process once, at the given point and method, and never again."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tuner.trial.faults import EXIT_CODE, maybe_fault

ROOT = Path(__file__).resolve().parents[3]


def _kill(fault: dict, method: str, grad_evals: float) -> subprocess.CompletedProcess:
    code = f"from tuner.trial.faults import maybe_fault; maybe_fault({fault!r}, {method!r}, {grad_evals!r})"
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_no_fault_before_its_point_or_for_another_method(tmp_path: Path) -> None:
    marker = tmp_path / "killed.json"
    maybe_fault(None, "sam", 1e9)
    maybe_fault({"kill_at_grad_evals": 10, "marker": str(marker)}, "sam", 9.0)
    maybe_fault({"kill_at_grad_evals": 10, "marker": str(marker), "method": "sgd"}, "sam", 20.0)
    assert not marker.exists()  # still alive, and nothing marked


def test_the_fault_kills_once_and_marks_it(tmp_path: Path) -> None:
    fault = {"kill_at_grad_evals": 10, "marker": str(tmp_path / "killed.json"), "method": "sam"}
    first = _kill(fault, "sam", 12.0)
    assert first.returncode == EXIT_CODE
    assert json.loads(Path(fault["marker"]).read_text())["grad_evals"] == 12.0
    assert _kill(fault, "sam", 30.0).returncode == 0  # the marker exists: the retried trial runs on
