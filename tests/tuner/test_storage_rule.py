"""One storage rule for every command: an experiment is found by name from any folder.

A real tiny run (subprocess CLI, local Ray, SQLite MLflow) whose spec keeps its results beside the spec
file (`storage.path` relative to it); then `list`, `export`, `report` and `resume` by name from an unrelated
folder. With an empty index the same command says, in one line, where it looked and how to point at it.
HOME and SHARPTUNE_HOME point into tmp_path: nothing is written to the real home folder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tuner.cli import main
from tuner.experiment_index import HOME_ENV, INDEX_FILE, locate, remember
from tuner.layout import STATE_FILE

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--set", "budget.num_samples=2", "--set", "budget.trial_grad_evals=40", "--set", "budget.eval_every=10",
        "--set", "scheduler.grace_period=10"]


def _cli(cwd: Path, home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HOME": str(home), HOME_ENV: str(home / ".sharptune")}
    return subprocess.run([sys.executable, "-m", "tuner", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict:
    base = tmp_path_factory.mktemp("storage_rule")
    project, home, elsewhere = base / "project", base / "home", base / "elsewhere"
    for folder in (project, home, elsewhere):
        folder.mkdir()
    spec = yaml.safe_load((ROOT / "search_spaces" / "smoke.yaml").read_text())
    spec.update(name="far-away", storage={"path": "results"})  # relative to the spec file
    (project / "far.yaml").write_text(yaml.safe_dump(spec))
    proc = _cli(project, home, "run", "far.yaml", *TINY)
    return {"proc": proc, "project": project, "home": home, "elsewhere": elsewhere}


@pytest.mark.slow
def test_every_command_finds_the_experiment_from_another_folder(tiny: dict) -> None:
    assert tiny["proc"].returncode == 0, tiny["proc"].stderr[-3000:]
    where = tiny["project"] / "results"
    assert (where / "far-away" / STATE_FILE).is_file()
    index = json.loads((tiny["home"] / ".sharptune" / INDEX_FILE).read_text())
    assert index == {"far-away": str(where)}  # the run recorded its storage, in the given home only

    elsewhere, home = tiny["elsewhere"], tiny["home"]
    listed = _cli(elsewhere, home, "list")
    assert listed.returncode == 0 and "far-away" in listed.stdout and f"1 in {where}" in listed.stdout, listed
    exported = _cli(elsewhere, home, "export", "far-away", "-o", "best.yaml")
    assert exported.returncode == 0, exported.stderr
    assert yaml.safe_load((elsewhere / "best.yaml").read_text())["method"] in ("sgd", "sam")
    report = _cli(elsewhere, home, "report", "far-away", "--no-log")
    assert report.returncode == 0, report.stderr[-2000:]
    assert (where / "far-away" / "report" / "report.html").is_file()
    resumed = _cli(elsewhere, home, "resume", "far-away")
    assert resumed.returncode == 0 and "nothing left to do" in resumed.stdout, resumed.stderr
    assert not (elsewhere / "results").exists()  # nothing was made in the folder the user stood in


@pytest.mark.slow
def test_not_found_says_where_it_looked_and_how_to_point(tiny: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    other_home = tmp_path / "other-home"  # an index that never heard of it
    monkeypatch.setenv(HOME_ENV, str(other_home))
    monkeypatch.chdir(tiny["elsewhere"])
    index = other_home / INDEX_FILE
    for command in ("export", "report", "dashboard", "resume", "ui"):
        assert main([command, "far-away"]) == 2, command
        err = capsys.readouterr().err
        lines = err.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in err, (command, err)
        assert f"looked in {tiny['elsewhere'] / 'results'}" in lines[0] and "--storage DIR" in lines[0], lines[0]
        assert f"{index} has no record of it" in lines[0], lines[0]
    out = tmp_path / "best.yaml"
    assert main(["export", "far-away", "--storage", str(tiny["project"] / "results"), "-o", str(out)]) == 0
    assert yaml.safe_load(out.read_text())["provenance"]["experiment"] == "far-away"


def test_the_local_results_folder_wins_and_a_gone_folder_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv(HOME_ENV, str(tmp_path / "home"))
    recorded, local = tmp_path / "recorded", tmp_path / "cwd" / "results"
    for root in (recorded, local):
        (root / "exp").mkdir(parents=True)
        (root / "exp" / STATE_FILE).write_text("{}")
    remember("exp", recorded)
    monkeypatch.chdir(tmp_path / "cwd")
    assert locate("exp", None) == local  # ./results/<name> first: what the user stands beside
    (local / "exp" / STATE_FILE).unlink()
    assert locate("exp", None) == recorded  # else the folder run recorded
    (recorded / "exp" / STATE_FILE).unlink()
    assert main(["export", "exp"]) == 2
    err = capsys.readouterr().err
    assert f"{recorded / 'exp'}, which is gone" in err and len(err.splitlines()) == 1
