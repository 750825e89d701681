"""The comparison on the parent run, where `tuner ui` opens: a compact per-method table, rounded metrics.

The table is written three ways: `comparison.md` and `comparison.html` artifacts (to paste into notes or
open from the Artifacts tab) and the run's description (`mlflow.note.content`), which MLflow's run page
renders as markdown above everything else, so the comparison is the first thing a researcher sees.

The table's best value and interval are rounded as the console summary rounds them
(`tuner.results.rounding`: at the interval half-width's first significant digit). Summary metrics are
shown rounded to SIG_DIGITS significant digits, not as `0.9252500000000001`.
`tuner.results.winners` logs the full floats; MLflow shows a metric's latest value (highest step, then
newest timestamp), so the rounded value logged here after it, at the same step, is what the UI shows.
"""

from __future__ import annotations

import html
import math
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow.entities import Metric, RunTag

from tuner.layout import MLFLOW_BATCH, NOTE_TAG, now_ms
from tuner.results.rounding import fmt_interval
from tuner.run.mlflow_ui import runs_route
from tuner.trial.protocol import OUTCOMES

SIG_DIGITS = 4
ARTIFACTS = ("comparison.md", "comparison.html")
HTML_ARTIFACT = ARTIFACTS[1]  # what `tuner ui` opens
HEADER = ("rank", "method", "best", "interval", "n", "c/p/d/e", "overhead", "winner config")


def round_sig(value: float, digits: int = SIG_DIGITS) -> float:
    """`value` to `digits` significant digits (integers and non-finite values unchanged): what a table shows."""
    if not math.isfinite(value) or value == int(value):
        return value
    return float(f"{value:.{digits}g}")


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _num(value: Any) -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "-"
    return f"{number:.{SIG_DIGITS}g}" if math.isfinite(number) else "-"


def _counts(trials: pd.DataFrame, method: str) -> str:
    """completed/pruned/diverged/errored runs of `method` (search and confirmation)."""
    if not len(trials) or "status" not in trials:
        return "-"
    status = trials.loc[trials["method"] == method, "status"]
    return "/".join(str(int((status == name).sum())) for name in OUTCOMES)


def comparison_rows(table: pd.DataFrame, trials: pd.DataFrame) -> list[tuple[str, ...]]:
    """One row of text cells (HEADER's columns) per method, in rank order."""
    rows = []
    for _, r in table.iterrows():
        mean, interval = fmt_interval(*(_float(r.get(k)) for k in ("mean", "low", "high")))
        hparams = sorted((r.get("hparams") or {}).items())
        config = ", ".join(f"{k}={_num(v) if isinstance(v, float) else v}" for k, v in hparams)
        overhead = _num(r.get("overhead"))
        rows.append((str(r.get("rank", "")), str(r["method"]), mean if math.isfinite(_float(r.get("mean"))) else "-",
                     interval, str(r.get("n", "")),
                     _counts(trials, str(r["method"])), "-" if overhead == "-" else f"{overhead}x", config or "-"))
    return rows


def _legend(metric: str, goal: str, note: str) -> list[str]:
    worse = "lower" if goal == "maximize" else "upper"
    return [f"{metric} ({goal}). Ranked by the {worse} end of each winner's 95% interval (its worse end; "
            "the mean where there is no interval), not by the mean.",
            "best: the winner's mean over its n runs (seeds); c/p/d/e: completed/pruned/diverged/errored runs; "
            "overhead: step time over the base optimizer's.",
            note]


def comparison_markdown(rows: list[tuple[str, ...]], metric: str, goal: str, note: str) -> str:
    """The table as GitHub markdown (MLflow renders the run description with it)."""
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(["**Comparison**", "", *lines, "", *(f"- {line}" for line in _legend(metric, goal, note) if line)])


def comparison_html(rows: list[tuple[str, ...]], metric: str, goal: str, note: str) -> str:
    """The table as one self-contained HTML page (MLflow's artifact viewer shows it as is)."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in HEADER)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    legend = "".join(f"<p>{html.escape(line)}</p>" for line in _legend(metric, goal, note) if line)
    style = ("body{font-family:sans-serif;margin:1em}table{border-collapse:collapse}"
             "td,th{border:1px solid #bbb;padding:3px 8px;text-align:right;white-space:nowrap}"
             "td:nth-child(2),td:last-child,th:nth-child(2),th:last-child{text-align:left}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>comparison</title><style>{style}</style>"
            f"</head><body><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{legend}</body></html>")


def log_rounded(client: Any, run_id: str, metrics: Mapping[str, Any], step: int = 0) -> None:
    """Log the finite numbers of `metrics` rounded (see `round_sig`), in MLflow-sized batches."""
    stamp = now_ms() + 1  # after a full value logged this very millisecond (a tie goes to the larger value)
    rows = [Metric(k, round_sig(float(v)), stamp, step) for k, v in metrics.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]
    for i in range(0, len(rows), MLFLOW_BATCH):
        client.log_batch(run_id, metrics=rows[i:i + MLFLOW_BATCH])


def write_comparison(client: Any, parent_id: str, table: pd.DataFrame, trials: pd.DataFrame, *,
                     metric: str, goal: str, note: str = "", link: str = "") -> str:
    """The comparison onto the parent run (artifacts and description) and its metrics rounded; returns
    the markdown. `link`: a markdown line under the table (where the grouped runs view is)."""
    rows = comparison_rows(table, trials)
    markdown = comparison_markdown(rows, metric, goal, note)
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in zip(ARTIFACTS, (markdown, comparison_html(rows, metric, goal, note)), strict=True):
            (Path(tmp) / name).write_text(text + "\n", encoding="utf-8")
            client.log_artifact(parent_id, str(Path(tmp) / name))
    client.log_batch(parent_id, tags=[RunTag(NOTE_TAG, markdown + (f"\n\n{link}" if link else ""))])
    round_metrics(client, parent_id)
    return markdown


def round_metrics(client: Any, run_id: str) -> int:
    """Show the run's metrics rounded: each one with more digits gets its rounded value as its latest
    (its history keeps the value computed). Returns how many it rounded."""
    current = client.get_run(run_id).data.metrics
    excess = {k: v for k, v in current.items() if round_sig(v) != v}
    log_rounded(client, run_id, excess)
    return len(excess)


def record_comparison(store: Any, table: pd.DataFrame, robust: Any, trials: pd.DataFrame) -> None:
    """`write_comparison` on an experiment's parent run (none yet: nothing to write), linking the runs view."""
    parent = store.parent()
    if parent is None:
        return
    link = f"[All runs, grouped by phase](#{runs_route(store.experiment_id)})"
    write_comparison(store.client, str(parent["run_id"]), table, trials, metric=robust.metric, goal=robust.goal,
                     note=robust.note, link=link)
