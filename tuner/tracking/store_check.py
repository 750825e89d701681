"""Reach and write the tracking store before anything starts, and say plainly why not.

A local SQLite store that cannot be written is a runtime failure (exit 1); a server that does not answer
or refuses the credentials is the user's setting (`tracking.uri`, MLFLOW_TRACKING_USERNAME/PASSWORD or
MLFLOW_TRACKING_TOKEN): a UserError (exit 2), raised before the experiment folder or any run exists.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any

from mlflow import MlflowClient

from tuner.errors import RuntimeFailure, UserError
from tuner.tracking.outage import http_settings
from tuner.tracking.tags import CHECKED_AT_TAG, ROLE_TAG, experiment_name, tag_is
from tuner.tracking.ui import EXPERIMENT_KIND_TAG, MODEL_TRAINING

CREDENTIALS = "MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD or MLFLOW_TRACKING_TOKEN"


# No retries and a short timeout while probing a server: fail in seconds, not minutes.
_PROBE = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}


def artifact_location(tracking_uri: str, experiment_dir: str | Path) -> str | None:
    """Artifacts of a local store go next to it (MLflow's default is ./mlruns of the current folder);
    a server keeps its own (`--artifacts-destination`, proxied)."""
    if tracking_uri.startswith(("sqlite:", "file:")):
        return (Path(experiment_dir) / "artifacts").resolve().as_uri()
    return None


def ensure_experiment(client: Any, name: str, artifacts: str | None) -> str:
    """Id of `sharptune/<name>`, created (a model-training experiment) and restored if deleted, as needed."""
    exp = client.get_experiment_by_name(experiment_name(name))
    if exp is None:
        return client.create_experiment(experiment_name(name), artifact_location=artifacts,
                                        tags={EXPERIMENT_KIND_TAG: MODEL_TRAINING})
    if exp.lifecycle_stage == "deleted":
        client.restore_experiment(exp.experiment_id)
    return exp.experiment_id


def _server_problem(tracking_uri: str, text: str) -> str:
    """One line for a server that did not do what was asked, naming what to fix."""
    code = re.search(r"error code (\d{3})", text)
    if code and code.group(1) in ("401", "403"):
        return (f"MLflow server {tracking_uri} refused the credentials (HTTP {code.group(1)}); set {CREDENTIALS} "
                "to an account of the server that may write")
    return (f"MLflow server {tracking_uri} cannot be reached or written: {text[:200]} "
            "(start the server or fix tracking.uri in the spec)")


def check_tracking(tracking_uri: str, name: str, experiment_dir: str | Path) -> str:
    """Reach and write the store before anything starts (see the module docstring for the exit codes)."""
    if tracking_uri.startswith("sqlite:///"):
        folder = Path(tracking_uri[len("sqlite:///"):]).parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RuntimeFailure(f"MLflow store {tracking_uri}: cannot create {folder}: {exc.strerror}") from None
        if not os.access(folder, os.W_OK):
            raise RuntimeFailure(f"MLflow store {tracking_uri}: folder {folder} is not writable")
    try:
        with http_settings(tracking_uri, _PROBE, override=True):
            client = MlflowClient(tracking_uri)
            exp_id = ensure_experiment(client, name, artifact_location(tracking_uri, experiment_dir))
            client.set_experiment_tag(exp_id, CHECKED_AT_TAG, str(int(time.time())))
    except Exception as exc:  # noqa: BLE001 - any failure here means the store is unusable
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        if tracking_uri.startswith(("http:", "https:")):
            raise UserError(_server_problem(tracking_uri, first)) from None
        raise RuntimeFailure(f"MLflow tracking store {tracking_uri} cannot be reached or written: {first} "
                             "(fix the path, or set tracking.uri in the spec)") from None
    return exp_id


def has_parent_run(tracking_uri: str, experiment_id: str) -> bool:
    """Whether the experiment already holds a parent run (a fresh `run` of that name is refused)."""
    return bool(MlflowClient(tracking_uri).search_runs([experiment_id], tag_is(ROLE_TAG, "parent"), max_results=1))
