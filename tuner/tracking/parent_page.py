"""What MLflow's page of the parent run shows: the comparison as its description and artifacts, metrics rounded.

`tuner.run.comparison` renders the per-method table (markdown and HTML); this module writes it: the
`comparison.md` and `comparison.html` artifacts and the run's description (`mlflow.note.content`), which
MLflow's run page renders as markdown above everything else.

Summary metrics are shown rounded to SIG_DIGITS significant digits, not as `0.9252500000000001`.
`tuner.tracking.winner_tags` logs the full floats; MLflow shows a metric's latest value (highest step, then
newest timestamp), so the rounded value logged here after it, at the same step, is what the UI shows.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.entities import Metric, RunTag

from tuner.tracking.tags import MLFLOW_BATCH, NOTE_TAG, now_ms

SIG_DIGITS = 4
ARTIFACTS = ("comparison.md", "comparison.html")
HTML_ARTIFACT = ARTIFACTS[1]  # what `tuner ui` opens


def round_sig(value: float, digits: int = SIG_DIGITS) -> float:
    """`value` to `digits` significant digits (integers and non-finite values unchanged): what a table shows."""
    if not math.isfinite(value) or value == int(value):
        return value
    return float(f"{value:.{digits}g}")


def log_rounded(client: Any, run_id: str, metrics: Mapping[str, Any], step: int = 0) -> None:
    """Log the finite numbers of `metrics` rounded (see `round_sig`), in MLflow-sized batches."""
    stamp = now_ms() + 1  # after a full value logged this very millisecond (a tie goes to the larger value)
    rows = [Metric(k, round_sig(float(v)), stamp, step) for k, v in metrics.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]
    for i in range(0, len(rows), MLFLOW_BATCH):
        client.log_batch(run_id, metrics=rows[i:i + MLFLOW_BATCH])


def write_comparison(client: Any, parent_id: str, markdown: str, html: str, link: str = "") -> None:
    """The rendered comparison onto the parent run (artifacts and description) and its metrics rounded.
    `link`: a markdown line under the table in the description (where the grouped runs view is)."""
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in zip(ARTIFACTS, (markdown, html), strict=True):
            (Path(tmp) / name).write_text(text + "\n", encoding="utf-8")
            client.log_artifact(parent_id, str(Path(tmp) / name))
    client.log_batch(parent_id, tags=[RunTag(NOTE_TAG, markdown + (f"\n\n{link}" if link else ""))])
    round_metrics(client, parent_id)


def round_metrics(client: Any, run_id: str) -> int:
    """Show the run's metrics rounded: each one with more digits gets its rounded value as its latest
    (its history keeps the value computed). Returns how many it rounded."""
    current = client.get_run(run_id).data.metrics
    excess = {k: v for k, v in current.items() if round_sig(v) != v}
    log_rounded(client, run_id, excess)
    return len(excess)


def artifact_names(tracking_uri: str, run_id: str) -> set[str]:
    """The names of a run's top-level artifacts (whether the parent already has its comparison page)."""
    return {a.path for a in MlflowClient(tracking_uri).list_artifacts(run_id)}
