"""Every command in the README runs as written, or is named here with the reason it is not run.

The README's shell lines (```bash, ```sh and ```console blocks) run in order, as a newcomer types them,
with `python` being this interpreter, in a sandbox: a copy of `search_spaces/` (so the smoke run's
`../results` lands in the sandbox, not in the checkout), `examples/` linked, a throwaway SHARPTUNE_HOME.
A new README line is therefore either run here or put in SKIPPED, with its reason, on purpose.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tuner.cli import main
from tuner.experiment_index import HOME_ENV

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = [README, *sorted((ROOT / "docs").glob("*.md"))]

SKIPPED = {
    "apt-get update && apt-get install -y dataset-fashion-mnist":
        "needs root and the network; .ci/run installs the package",
    'python -m pip install -q -e ".[dev,models,comparators,dashboard,lightning]"':
        "the install itself; .ci/run runs it on a clean checkout",
    "python -m tuner run search_spaces/sam.yaml":
        "the headline run, about 10 minutes on 2 cores; validated here (see RUN_AS_VALIDATE), run shrunk by "
        "tests/tuner/test_shipped_specs.py",
    "python -m tuner report sam-mnist": "needs the headline run",
    "ruff check . && python -m pytest -q": "the test suite itself",
}
RUN_AS_VALIDATE = ("python -m tuner run ",)  # a skipped run's spec and --set still go through `validate`


def shell_lines(text: str) -> list[str]:
    """The commands of the shell blocks, continuation lines joined, comments and prompts dropped."""
    lines: list[str] = []
    for lang, body in re.findall(r"^```(bash|sh|console)[ \t]*\n(.*?)^```", text, flags=re.M | re.S):
        for raw in body.replace("\\\n", " ").splitlines():
            line = raw.strip()
            if lang == "console":
                if not line.startswith("$ "):
                    continue  # output, not a command
                line = line[2:]
            if line and not line.startswith("#"):
                lines.append(" ".join(line.split(" #", 1)[0].split()) if " #" in line else line)
    return lines


LINES = shell_lines(README.read_text(encoding="utf-8"))


def test_every_skip_names_a_readme_line_and_a_reason() -> None:
    assert LINES, "the README has no shell block"
    assert set(SKIPPED) <= set(LINES), set(SKIPPED) - set(LINES)
    assert all(reason.strip() for reason in SKIPPED.values())
    assert [line for line in LINES if line not in SKIPPED]  # something is run


def test_readme_setup_lines_are_what_ci_runs() -> None:
    """The install, the smoke run and the test line are .ci/run's own lines, character for character."""
    ci = {line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()}
    for line in ('python -m pip install -q -e ".[dev,models,comparators,dashboard,lightning]"',
                 "python -m tuner run search_spaces/smoke.yaml", "ruff check . && python -m pytest -q"):
        assert line in LINES and line in ci, line


@pytest.mark.parametrize("page", DOCS, ids=[p.name for p in DOCS])
def test_links_point_at_files_that_exist(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    targets = [t for t in re.findall(r"\]\(([^)\s]+)\)", text) if not t.startswith(("http://", "https://", "#"))]
    missing = [t for t in targets if not (page.parent / t.split("#", 1)[0]).exists()]
    assert not missing, missing


def test_readme_is_one_screen_with_a_table_of_contents() -> None:
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 80
    assert text.count("def closure") == 0  # the closure snippet lives once, in docs/methods-in-your-code.md
    snippets = sum(p.read_text(encoding="utf-8").count("def closure():") for p in DOCS)
    assert snippets == 1
    assert "## Contents" in text


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> dict:
    box = tmp_path_factory.mktemp("readme")
    shutil.copytree(ROOT / "search_spaces", box / "search_spaces")
    (box / "examples").symlink_to(ROOT / "examples")
    bin_dir = box / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(ROOT),
           HOME_ENV: str(box / "home")}
    return {"dir": box, "env": env}


@pytest.mark.slow
def test_readme_commands_run_as_written(sandbox: dict) -> None:
    box, env = sandbox["dir"], sandbox["env"]
    ran = []
    for line in LINES:
        command = line
        if line in SKIPPED:
            if not line.startswith(RUN_AS_VALIDATE):
                continue
            command = line.replace(" run ", " validate ", 1) + " --no-preflight"
        proc = subprocess.run(["bash", "-c", command], cwd=box, env=env, capture_output=True, text=True,
                              timeout=900)
        assert proc.returncode == 0, f"{command}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
        assert "Traceback" not in proc.stderr, command
        ran.append(command)
    assert any(c.startswith("python -m tuner run ") for c in ran) and any(" export " in c for c in ran)
    # what the README says each line leaves behind
    assert (box / "results" / "smoke" / "report" / "report.html").is_file()
    assert yaml.safe_load((box / "best.yaml").read_text())["method"] in ("sgd", "sam")


def spec_commands(text: str) -> list[list[str]]:
    """`python -m tuner run|validate search_spaces/X.yaml [--set K=V ...]` in a page, as argv for `validate`."""
    found = []
    for match in re.finditer(r"python -m tuner (?:run|validate) (search_spaces/[\w.-]+\.yaml)((?:\\\n|[^\n`#])*)",
                             text):
        words = shlex.split(match.group(2).replace("\\\n", " "))
        sets = [w for i, w in enumerate(words) if i and words[i - 1] == "--set"]
        found.append([match.group(1), *(a for s in sets for a in ("--set", s))])
    return found


SPEC_COMMANDS = [(page.name, argv) for page in DOCS for argv in spec_commands(page.read_text(encoding="utf-8"))]


@pytest.mark.parametrize(("page", "argv"), SPEC_COMMANDS, ids=[f"{p}:{' '.join(a)}" for p, a in SPEC_COMMANDS])
def test_every_shipped_spec_command_in_the_docs_validates(page: str, argv: list[str], monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """Every spec and `--set` the README and docs/ show is one `validate` accepts (the runs are too long to run)."""
    monkeypatch.chdir(ROOT)
    assert main(["validate", *argv, "--no-preflight"]) == 0, capsys.readouterr().err


def spec_snippets(text: str) -> list[tuple[str, dict]]:
    """Each ```yaml block of a page with the shipped spec named in the paragraph before it: (spec, its keys)."""
    found = []
    for match in re.finditer(r"^```yaml[ \t]*\n(.*?)^```", text, flags=re.M | re.S):
        before = text[:match.start()].rstrip().rsplit("\n\n", 1)[-1]
        named = re.findall(r"search_spaces/[\w.-]+\.yaml", before)
        assert named, f"the yaml block {match.group(1)[:60]!r} names no shipped spec before it"
        found.append((named[-1], yaml.safe_load(match.group(1))))
    return found


def test_the_readme_cluster_spec_validates_and_spreads_over_two_nodes(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """"Beyond one machine": the spec lines, put in the shipped spec they name, validate, and its 4-worker trial
    fits two nodes of 2 GPUs (8 CPUs each) together but not one of them."""
    from tuner.errors import UserError
    from tuner.run.placement import check_placement

    ((name, keys),) = spec_snippets(README.read_text(encoding="utf-8"))
    spec = {**yaml.safe_load((ROOT / name).read_text()), **keys}
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(spec))
    assert main(["validate", str(path), "--no-preflight"]) == 0, capsys.readouterr().err
    resources = spec["resources"]
    node = {"Alive": True, "Resources": {"CPU": 8.0, "GPU": 2.0}}
    check_placement(resources["cpu"], resources["gpu"], [node, node], workers=resources["workers"])
    with pytest.raises(UserError, match="resources.workers"):
        check_placement(resources["cpu"], resources["gpu"], [node], workers=resources["workers"])
