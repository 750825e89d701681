"""A real `mlflow server` for the cluster tests: SQLite backend, proxied artifacts, basic auth, all in a
temporary folder on 127.0.0.1; stopped and started again by the tests that take it away."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

USER, PASSWORD = "admin", "sharptune-test-password"
# Ray nodes the tests start: a busy machine starts Ray's agents slowly, and Ray's defaults then abort the node
SLOW_START = {"RAY_agent_register_timeout_ms": "240000", "RAY_raylet_start_wait_time_s": "240"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MlflowServer:
    """`mlflow server --app-name basic-auth` on a free port; `stop()` ends its process group (ours)."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.port = folder, free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        (folder / "auth.ini").write_text(
            "[mlflow]\ndefault_permission = READ\n"
            f"database_uri = sqlite:///{folder / 'auth.db'}\nadmin_username = {USER}\n"
            "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n")

    def start(self, timeout: float = 300) -> None:
        env = {**os.environ, "MLFLOW_AUTH_CONFIG_PATH": str(self.folder / "auth.ini"),
               "MLFLOW_AUTH_ADMIN_PASSWORD": PASSWORD, "MLFLOW_FLASK_SERVER_SECRET_KEY": "sharptune-tests",
               "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        log = open(self.folder / "server.log", "a")  # noqa: SIM115 - the server writes it while it lives
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--app-name", "basic-auth",
             "--backend-store-uri", f"sqlite:///{self.folder / 'mlflow.db'}",
             "--artifacts-destination", str(self.folder / "artifacts"),
             "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"],
            cwd=self.folder, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, (self.folder / "server.log").read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as reply:
                    if reply.status == 200:
                        return
            except OSError:
                time.sleep(0.3)
        raise TimeoutError(f"mlflow server did not answer in {timeout} s")

    def stop(self) -> None:
        """SIGTERM to the server's own process group (it and its uvicorn worker), SIGKILL if it lingers."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # the worker may outlive its parent by a moment
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) != 0:
                    return
            time.sleep(0.2)
