"""A trial that stops reporting is stopped as errored, with why, and the study goes on (issue 29)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from e2e import ROOT, cli

pytestmark = pytest.mark.slow

HANGS = '''
import time


@dataclass(frozen=True)
class HangOptions(MoonsOptions):
    hang_after: int = option(0, lambda v: v >= 0, "batches before next_batch hangs; 0: never")


class Hangs(Moons):
    """Moons whose next_batch sleeps for an hour after `hang_after` batches, as a stuck loader would."""

    Options = HangOptions

    def next_batch(self):
        self.batches = getattr(self, "batches", 0) + 1
        if self.options.hang_after and self.batches > self.options.hang_after:
            time.sleep(3600)
        return super().next_batch()
'''


def test_a_silent_trial_is_stopped_as_stalled_and_the_study_goes_on(tmp_path: Path) -> None:
    from mlflow import MlflowClient

    example = (ROOT / "examples" / "own_workload" / "my_tasks.py").read_text()
    (tmp_path / "hangs.py").write_text(example + HANGS)  # one file: Ray ships it to the workers
    spec = {
        "name": "stall", "metric": {"name": "eval/accuracy", "goal": "maximize"},
        "workload": {"name": "hangs.py:Hangs", "options": {"width": 8}},
        "methods": ["sgd"],
        "parameters": {"lr": {"value": 0.1}, "hang_after": {"type": "categorical", "values": [0, 30]}},
        "sampler": {"name": "grid", "seed": 0}, "scheduler": {"name": "fifo"},
        "budget": {"max_concurrent_trials": 2, "trial_grad_evals": 200, "eval_every": 10, "stall_timeout": "6s"},
        "resources": {"cpu": 1, "gpu": 0}, "confirm": None, "max_failures": 2,
        "storage": {"path": str(tmp_path / "results")},
    }
    path = tmp_path / "stall.yaml"
    path.write_text(yaml.safe_dump(spec))
    proc = cli("run", str(path), "--no-preflight", timeout=400)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "errored: sgd: 1 trial(s); first error: stalled for " in out, out[-3000:]
    assert "at 30 grad evals" in out
    client = MlflowClient(f"sqlite:///{tmp_path / 'results' / 'stall' / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("sharptune/stall").experiment_id], max_results=100)
    trials = {r.data.params["hang_after"]: r for r in runs if r.data.tags.get("sharptune.role") == "trial"}
    assert trials["0"].data.tags["sharptune.status"] == "completed"
    hung = trials["30"]
    assert hung.data.tags["sharptune.status"] == "errored" and hung.info.status == "FAILED"
    assert hung.data.tags["sharptune.error"].startswith("stalled for ")
    assert "sharptune.retries" not in hung.data.tags  # a hang is not retried (max_failures is 2)
