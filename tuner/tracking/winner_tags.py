"""The results written back onto MLflow: the best runs' tags, the parent's summary metrics and summary.csv,
and the report folder.

`tuner.results.winners` computes what to write (which runs won, at which rank, each method's numbers);
this module only writes it, so the winner `run` prints is the one tagged here.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Mapping
from pathlib import Path

from mlflow.entities import Metric, RunTag

from tuner.tracking.reader import ExperimentStore
from tuner.tracking.tags import BEST_TAG, MLFLOW_BATCH, RANK_TAG, WINNER_SOURCE_TAG, WINNER_TAG, now_ms, tag_column


def write_winner_tags(store: ExperimentStore, best: Mapping[str, int], metrics: Mapping[str, float | None],
                      winner: str | None, source: str, summary_csv: str) -> None:
    """Tag the `best` runs (run id -> its method's rank; stale tags cleared) and log the summary onto the
    parent run: the finite `metrics`, the `winner` method and its `source` as tags, `summary_csv` as an
    artifact."""
    client = store.client
    runs = store.runs()
    if tag_column(BEST_TAG) in runs.columns:
        stale = runs.loc[(runs[tag_column(BEST_TAG)] == "true") & ~runs["run_id"].isin(set(best)), "run_id"]
        for rid in stale:
            client.set_tag(rid, BEST_TAG, "false")
            client.delete_tag(rid, RANK_TAG)
    for rid, rank in best.items():
        client.log_batch(rid, tags=[RunTag(BEST_TAG, "true"), RunTag(RANK_TAG, str(rank))])
    parent = store.parent()
    if parent is None:
        return
    pid = parent["run_id"]
    now = now_ms()
    rows = [Metric(k, float(v), now, 0) for k, v in metrics.items() if v is not None and math.isfinite(v)]
    tags = [RunTag(WINNER_TAG, winner)] if winner is not None else []
    tags.append(RunTag(WINNER_SOURCE_TAG, source))
    for i in range(0, max(len(rows), 1), MLFLOW_BATCH):
        client.log_batch(pid, metrics=rows[i:i + MLFLOW_BATCH], tags=tags if i == 0 else [])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "summary.csv"
        path.write_text(summary_csv, encoding="utf-8")
        client.log_artifact(pid, str(path))
    store.runs(refresh=True)


def log_report(store: ExperimentStore, folder: str | Path) -> None:
    """The report folder onto the parent run as `report/` (no parent yet: nothing to log)."""
    parent = store.parent()
    if parent is not None:
        store.client.log_artifacts(parent["run_id"], str(folder), "report")
