"""`python -m tuner.tracking.server ARGS`: `mlflow server ARGS`, serving `tuner.tracking.app`.

`mlflow server` takes another app only through an installed `mlflow.app` entry point. It builds the
uvicorn command in one private function, so this launcher wraps that function and swaps the app name
in the command; everything else (stores, security middleware, workers) is MLflow's own. The one
MLflow-private name sharptune uses for the UI is here, and an MLflow whose command no longer ends in
its app name stops with a clear error instead of silently serving without the classic-mode page.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

MLFLOW_APP = "mlflow.server.fastapi_app:app"
OUR_APP = "tuner.tracking.app:app"


def patch_uvicorn_command() -> None:
    """Make `mlflow server` start uvicorn on OUR_APP; the uvicorn process finds `tuner` on PYTHONPATH."""
    import mlflow.server as server

    build = server._build_uvicorn_command

    def ours(*args: Any, **kwargs: Any) -> list[str]:
        cmd = build(*args, **kwargs)
        if not cmd or cmd[-1] != MLFLOW_APP:
            raise SystemExit(f"error: this MLflow starts {cmd[-1:]} rather than {MLFLOW_APP}; "
                             "sharptune's `ui` needs updating for it (python -m mlflow server still works)")
        return [*cmd[:-1], OUR_APP]

    server._build_uvicorn_command = ours
    root = str(Path(__file__).resolve().parents[2])
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)


def default_allowed_hosts() -> list[str]:
    """MLflow's own default Host headers (localhost and private IPs), which `tuner ui` extends."""
    from mlflow.server.security_utils import get_default_allowed_hosts

    return list(get_default_allowed_hosts())


def main(argv: list[str]) -> int:
    from mlflow.cli import cli

    patch_uvicorn_command()
    return cli.main(args=["server", *argv], prog_name="mlflow", standalone_mode=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
