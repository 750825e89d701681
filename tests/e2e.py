"""Helpers of the end-to-end tests: the real `python -m tuner` command line and variants of the smoke spec."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def cli(*args: str, timeout: float = 300, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`python -m tuner ARGS` from the repository root, output captured."""
    return subprocess.run([sys.executable, "-m", "tuner", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def smoke_spec(folder: Path, **changes: object) -> Path:
    """search_spaces/smoke.yaml with `changes` and its store in `folder/results`, written to `folder/<name>.yaml`."""
    spec = yaml.safe_load((ROOT / "search_spaces" / "smoke.yaml").read_text())
    spec["storage"] = {"path": str(folder / "results")}
    spec.update(changes)
    path = folder / f"{spec['name']}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (children, theirs, ...): what a test must clean up after a SIGKILL."""
    out = subprocess.run(["ps", "-e", "-o", "pid=,ppid="], capture_output=True, text=True).stdout
    children: dict[int, list[int]] = {}
    for line in out.splitlines():
        p, pp = (int(x) for x in line.split())
        children.setdefault(pp, []).append(p)
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def kill_driver(driver: subprocess.Popen) -> None:
    """`kill -9` a `tuner run` driver, then every process it started (Ray's), by id: what a crash leaves."""
    ray_processes = descendants(driver.pid)
    driver.send_signal(signal.SIGKILL)
    driver.wait(30)
    time.sleep(2)
    for pid in ray_processes:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
