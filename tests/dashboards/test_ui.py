"""`python -m tuner ui` argument handling that needs no server (the served UI is in test_browser.py)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from fake_experiment import FakeExperiment

from tuner.cli import main


def test_ui_needs_a_known_experiment(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ui", "--storage", str(tmp_path)]) == 2
    assert main(["ui", "ghost", "--storage", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "choose an experiment" in err[0] and "no experiment 'ghost'" in err[1]


def test_ui_refuses_a_busy_port(fake_experiment: FakeExperiment, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["ui", "--storage", str(fake_experiment.storage), "--port", str(port)]) == 2
    assert f"port {port} on 127.0.0.1 is in use" in capsys.readouterr().err
