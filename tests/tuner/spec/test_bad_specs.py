"""Every file in bad_specs/ must be refused by `validate`: exit 2, one line naming the file, no traceback.

Each file's first line says what the message must contain (`# expect: ...`); `binary.yaml` has none.
A file with several independent mistakes says how many lines `validate` must print on its second line
(`# errors: N`, default 1): every one is found in one go, and no cascade of a repair is added.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tuner.cli import main

BAD = Path(__file__).parent / "bad_specs"
FILES = sorted(BAD.glob("*.yaml"))
REPO = Path(__file__).resolve().parents[3]


def _expected(path: Path) -> str:
    first = path.read_bytes().split(b"\n", 1)[0].decode("utf-8", "replace")
    return first.removeprefix("# expect: ").strip() if first.startswith("# expect: ") else "binary data"


def _error_count(path: Path) -> int:
    lines = path.read_bytes().split(b"\n", 2)
    second = lines[1].decode("utf-8", "replace") if len(lines) > 1 else ""
    return int(second.removeprefix("# errors: ")) if second.startswith("# errors: ") else 1


def _error_lines(err: str, path: Path, count: int) -> list[str]:
    lines = err.splitlines()
    assert len(lines) == count, err
    assert all(line.startswith(f"error: {path}") for line in lines), err
    assert "Traceback" not in err
    return lines


def _one_error_line(err: str, path: Path) -> str:
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"error: {path}"), lines[0]
    assert "Traceback" not in err
    return lines[0]


def test_corpus_is_big_enough() -> None:
    assert len(FILES) >= 45


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_bad_spec_is_refused(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = _error_lines(err, path, _error_count(path))
    assert _expected(path) in lines[0]


def test_every_mistake_is_reported_in_one_go(capsys: pytest.CaptureFixture[str]) -> None:
    """An unknown key, an unknown method and a bad value, far apart: three lines, each naming its field."""
    path = BAD / "three_mistakes.yaml"
    assert main(["validate", str(path)]) == 2
    lines = _error_lines(capsys.readouterr().err, path, 3)
    assert lines[0].startswith(f"error: {path}:6: methods.1: unknown method 'sma'; did you mean 'sam'?")
    assert lines[1].startswith(f"error: {path}:10: budget.eval_evry: unknown key 'eval_evry'; "
                               "did you mean 'eval_every'?")
    assert lines[2].startswith(f"error: {path}:11: resources.cpu: out of range: -1")


def test_a_near_miss_is_checked_as_meant(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """A misspelt key is read under the name it was meant to have: its bad value is the next line, and
    an override's mistake names its --set."""
    path = tmp_path / "spec.yaml"
    path.write_text((BAD / "three_mistakes.yaml").read_text().replace("eval_evry: 20", "eval_evry: 0"))
    assert main(["validate", str(path), "--no-preflight", "--set", "sampler.sed=1", "--set", "sampler.name=rndom"]) == 2
    err = capsys.readouterr().err
    assert "budget.eval_evry: unknown key" in err
    assert "budget.eval_every: out of range: 0" in err
    assert "sampler.sed: unknown key 'sed'; did you mean 'seed'? (from --set sampler.sed=1)" in err
    assert "sampler.name: unknown value 'rndom'; did you mean 'random'? (from --set sampler.name=rndom)" in err
    assert len(err.splitlines()) == 6


def test_line_numbers_point_at_the_field(capsys: pytest.CaptureFixture[str]) -> None:
    path = BAD / "low_gt_high.yaml"
    assert main(["validate", str(path)]) == 2
    assert capsys.readouterr().err.startswith(f"error: {path}:7: parameters.lr.low: ")


@pytest.mark.parametrize("make", ["missing", "directory"])
def test_path_that_is_not_a_file(make: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "spec.yaml"
    if make == "directory":
        path.mkdir()
    assert main(["validate", str(path)]) == 2
    line = _one_error_line(capsys.readouterr().err, path)
    assert ("no such file" if make == "missing" else "is a directory") in line


@pytest.mark.parametrize("name", ["yaml_syntax.yaml", "binary.yaml", "unknown_method.yaml"])
def test_subprocess_exit_code_and_one_line(name: str) -> None:
    path = BAD / name
    proc = subprocess.run([sys.executable, "-m", "tuner", "validate", str(path)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stdout == ""
    _one_error_line(proc.stderr, path)


def _run_isolated(script: str, cwd: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", script], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env=env)
    return json.loads(proc.stdout.strip().splitlines()[-1])


HEAVY = "sorted(m for m in sys.modules if m.split('.')[0] in ('ray', 'mlflow'))"


def test_spec_modules_import_no_ray_and_no_mlflow(tmp_path: Path) -> None:
    script = ("import json, sys\n"
              "import tuner.spec, tuner.space, tuner.run.optuna_space, tuner.commands.validate\n"
              f"spec = tuner.spec.load_spec({str(REPO / 'search_spaces' / 'smoke.yaml')!r})\n"
              "tuner.run.optuna_space.build_define(spec)\n"
              f"print(json.dumps({HEAVY}))\n")
    assert _run_isolated(script, tmp_path) == []


def test_validate_starts_no_ray_and_no_mlflow(tmp_path: Path) -> None:
    """`python -m tuner validate` must not even import ray or mlflow, nor create a store, good spec or bad.

    The CLI imports every command module to build its parser, so any command that imports mlflow or ray
    at module level breaks this; the assertion names the modules that did.
    """
    # A copy of the smoke spec whose relative store (../results) lands inside this test's own directory,
    # so the check cannot be fooled by, or trip over, results a real run left in the repository.
    spec_dir = tmp_path / "specs"
    spec_dir.mkdir()
    shutil.copy(REPO / "search_spaces" / "smoke.yaml", spec_dir / "smoke.yaml")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    script = (
        "import json, sys\n"
        "from tuner.cli import main\n"
        f"codes = [main(['validate', {str(BAD / 'unknown_method.yaml')!r}]),\n"
        f"         main(['validate', {str(spec_dir / 'smoke.yaml')!r}])]\n"
        "culprits = sorted(n for n in sys.modules if n.startswith('tuner.commands.'))\n"
        f"print(json.dumps({{'codes': codes, 'mods': {HEAVY}[:3], 'commands': culprits}}))\n"
    )
    result = _run_isolated(script, cwd)
    assert result["codes"] == [2, 0]
    assert result["mods"] == [], f"ray/mlflow imported by one of {result['commands']}"
    assert list(cwd.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cwd", "specs"], "validate created a store"
