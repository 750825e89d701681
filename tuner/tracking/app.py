"""The MLflow server app `tuner ui` runs: MLflow's own, plus one page that opens it in its classic mode.

`GET /sharptune/open?experiment=ID[&run=RUN_ID[&artifact=NAME]]` stores MLflow's model-training workflow
in the browser (localStorage, see `tuner.tracking.ui`) and then goes to the run's artifact (the parent
run's comparison.html), the run's page, or the experiment's runs view. Without it, the first link a user
follows from the runs table drops the URL's `workflowType` and MLflow switches to its GenAI UI.
Only ids go into the page, checked against a strict pattern: it redirects nowhere but inside this server.

`uvicorn tuner.tracking.app:app` is started by `tuner.tracking.server` in place of MLflow's
`mlflow.server.fastapi_app:app`.
"""

from __future__ import annotations

import json
import re

from flask import Response, request
from mlflow.server import app as flask_app

from tuner.tracking.ui import (
    ASSISTANT_SHOWN_KEY,
    CLASSIC,
    LANDING_PATH,
    WORKFLOW_STORAGE_KEY,
    run_route,
    runs_route,
)

ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
ARTIFACT = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}")


def landing_page(experiment_id: str, run_id: str | None, artifact: str | None = None) -> str:
    """The HTML that stores the classic mode and replaces itself with the MLflow page of the run."""
    route = run_route(experiment_id, run_id, artifact) if run_id else runs_route(experiment_id)
    stored = ((WORKFLOW_STORAGE_KEY, json.dumps(CLASSIC)), (ASSISTANT_SHOWN_KEY, "true"))
    script = "".join(f"localStorage.setItem({json.dumps(k)},{json.dumps(v)});" for k, v in stored)
    script = f"try{{{script}}}catch(e){{}}location.replace('../#' + {json.dumps(route)});"
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>sharptune</title></head>"
            f"<body><script>{script}</script><a href='../#{route}'>open MLflow</a></body></html>")


@flask_app.route(f"/{LANDING_PATH}")
def open_classic() -> Response:
    args = request.args
    experiment, run, artifact = args.get("experiment", ""), args.get("run") or None, args.get("artifact") or None
    if not ID.fullmatch(experiment) or (run is not None and not ID.fullmatch(run)) or \
            (artifact is not None and (run is None or not ARTIFACT.fullmatch(artifact))):
        return Response("experiment=ID[&run=RUN_ID[&artifact=NAME]] expected\n", status=400, mimetype="text/plain")
    return Response(landing_page(experiment, run, artifact), mimetype="text/html")


from mlflow.server.fastapi_app import app  # noqa: E402,F401 - after the route: MLflow's app, with the page above
