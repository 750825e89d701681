"""A user's own workload by import target: checked like a built-in, held to the same contract."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from tuner.cli import main
from tuner.spec import load_spec
from tuner.workloads import create_workload, resolve_options
from tuner.workloads.conformance import ConformanceError, run_conformance

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "examples" / "own_workload"


def _spec(folder: Path, workload: dict) -> Path:
    spec = yaml.safe_load((EXAMPLE / "spec.yaml").read_text())
    spec.update(workload=workload, storage={"path": str(folder / "results")}, confirm=None)
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.fixture
def user_folder(tmp_path: Path) -> Path:
    """The example's workload file in a folder outside the project, with a package beside it."""
    shutil.copy(EXAMPLE / "my_tasks.py", tmp_path / "my_tasks.py")
    package = tmp_path / "userpkg_own"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "tasks.py").write_text((EXAMPLE / "my_tasks.py").read_text())
    return tmp_path


def test_a_file_target_is_resolved_beside_the_spec_and_its_options_checked(user_folder: Path) -> None:
    spec = load_spec(_spec(user_folder, {"name": "my_tasks.py:Moons", "options": {"width": 8}}))
    assert spec.workload.name == f"{user_folder / 'my_tasks.py'}:Moons"  # absolute: a saved spec still finds it
    assert spec.workload.options == {"width": 8, "depth": 2, "noise": 0.2, "batch_size": 32, "label_noise": 0.0}
    package = load_spec(_spec(user_folder, {"name": "userpkg_own.tasks:Moons"}))
    assert resolve_options(package.workload.name, {"depth": 3})["depth"] == 3
    wl = create_workload(spec.workload.name, spec.workload.options, seed=0, device="cpu")
    noisy = create_workload(spec.workload.name, {**spec.workload.options, "label_noise": 0.2}, seed=0, device="cpu")
    assert abs(noisy.labels.flipped_fraction - 0.2) < 1e-3 and wl.labels is None  # the helper's label noise
    assert 0.0 <= wl.evaluate()["eval/accuracy"] <= 1.0


@pytest.mark.parametrize(("workload", "expected"), [
    ({"name": "missing.py:Moons"}, "missing.py: no such file"),
    ({"name": "broken.py:Moons"}, "broken.py:2: syntax error"),
    ({"name": "my_tasks.py:Nope"}, "has no class 'Nope' (Workload subclasses there: Moons"),
    ({"name": "my_tasks.py:MoonsOptions"}, "MoonsOptions in"),
    ({"name": "no_such_pkg_x.tasks:Moons"}, "no module 'no_such_pkg_x'"),
    ({"name": "my_tasks.py:Moons", "options": {"widht": 3}}, "workload.options.widht: "),
    ({"name": "my_tasks.py:Moons", "options": {"depth": 9}}, "option 'depth' = 9 is impossible"),
])
def test_bad_targets_exit_2_with_one_line_naming_the_field_and_file(
        user_folder: Path, capsys: pytest.CaptureFixture[str], workload: dict, expected: str) -> None:
    (user_folder / "broken.py").write_text("import torch\ndef oops(:\n")
    path = _spec(user_folder, workload)
    assert main(["validate", str(path), "--no-preflight"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(path) in err and expected in err, err
    assert "workload.name" in err or "workload.options" in err
    if "options" not in workload:
        assert str(user_folder) in err.split(str(path), 1)[1] or "no_such_pkg_x" in err  # the workload's file


def test_conformance_passes_for_builtins_and_the_example(user_folder: Path) -> None:
    for name, options in [("valley2d", {}), ("scale_invariant", {"batch_size": 4}),
                          (f"{user_folder / 'my_tasks.py'}:Moons", {"width": 8})]:
        assert run_conformance(name, options) == ["closure", "seed pairing", "state round trip"]


def test_conformance_names_the_broken_part(user_folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = (user_folder / "my_tasks.py").read_text()
    (user_folder / "bad_tasks.py").write_text(text + '''

class UnseededOrder(Moons):
    """Draws its batches from Python's unseeded RNG: not paired across methods, not resumable."""

    def next_batch(self):
        import random

        x, y = self.train_set[random.sample(range(len(self.train_set)), 8)]
        return x, y


class Backward(Moons):
    """Calls backward in its closure."""

    def closure(self, batch):
        run = super().closure(batch)

        def twice():
            loss, out = run()
            loss.backward(retain_graph=True)
            return loss, out
        return twice
''')
    with pytest.raises(ConformanceError, match="seed pairing: seed 0 gave a different batch 0"):
        run_conformance(f"{user_folder / 'bad_tasks.py'}:UnseededOrder", {"width": 4})
    path = _spec(user_folder, {"name": "bad_tasks.py:Backward", "options": {"width": 4}})
    assert main(["validate", str(path), "--no-preflight", "--deep"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("closure: the closure took gradients itself (the optimizer calls backward)"), err
