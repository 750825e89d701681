"""`python -m tuner --help` teaches: three example commands and where results go (issue 32)."""

from __future__ import annotations

import pytest

from tuner.cli import main


def test_help_shows_examples_and_where_results_go(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    examples = [line for line in out.splitlines() if line.strip().startswith("python -m tuner ")]
    assert [e.split()[3] for e in examples] == ["run", "report", "export"]
    assert "results go to <storage>/<name>/" in out and "README.md" in out
