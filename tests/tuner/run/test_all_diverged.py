"""A study whose every trial diverged: an honest summary, and an export that says so in one line (issue 29)."""

from __future__ import annotations

from pathlib import Path

import pytest
from e2e import cli, smoke_spec

pytestmark = pytest.mark.slow


def test_all_diverged_summary_and_export(tmp_path: Path) -> None:
    path = smoke_spec(tmp_path, name="boom", methods=["sgd"], scheduler={"name": "fifo"}, confirm=None,
                      parameters={"lr": {"type": "categorical", "values": [40.0, 50.0]}, "momentum": {"value": 0.0}},
                      sampler={"name": "grid", "seed": 0},
                      budget={"max_concurrent_trials": 2, "trial_grad_evals": 100, "eval_every": 10})
    proc = cli("run", str(path), "--no-preflight", timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    row = next(line for line in proc.stdout.splitlines() if line.startswith("sgd "))
    assert "0/0/2/0" in row and "(no finite result: every trial diverged)" in row, proc.stdout[-2000:]
    assert "pruned only" not in proc.stdout
    export = cli("export", "boom", "--storage", str(tmp_path / "results"), timeout=120)
    assert export.returncode == 2, export.stdout + export.stderr
    lines = export.stderr.strip().splitlines()
    assert len(lines) == 1 and "no finite result" in lines[0] and "Traceback" not in export.stderr, export.stderr
