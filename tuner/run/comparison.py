"""The comparison on the parent run, where `tuner ui` opens: a compact per-method table.

The table is rendered here twice, as markdown and as one HTML page; `tuner.tracking.parent_page` writes
both onto the parent run (the `comparison.md` and `comparison.html` artifacts, and the run's description,
which MLflow's run page renders above everything else, so the comparison is the first thing a researcher
sees) and shows its metrics rounded.

The table's best value and interval are rounded as the console summary rounds them
(`tuner.results.rounding`: at the interval half-width's first significant digit), other numbers to
SIG_DIGITS significant digits.
"""

from __future__ import annotations

import html
import math
from typing import Any

import pandas as pd

from tuner.names import OUTCOMES
from tuner.results.rounding import fmt_interval
from tuner.tracking.parent_page import SIG_DIGITS, write_comparison
from tuner.tracking.ui import runs_route

HEADER = ("rank", "method", "best", "interval", "n", "c/p/d/e", "overhead", "winner config")


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


def record_comparison(store: Any, table: pd.DataFrame, robust: Any, trials: pd.DataFrame) -> None:
    """The comparison onto an experiment's parent run (none yet: nothing to write), linking the runs view."""
    parent = store.parent()
    if parent is None:
        return
    rows = comparison_rows(table, trials)
    markdown = comparison_markdown(rows, robust.metric, robust.goal, robust.note)
    link = f"[All runs, grouped by phase](#{runs_route(store.experiment_id)})"
    write_comparison(store.client, str(parent["run_id"]), markdown,
                     comparison_html(rows, robust.metric, robust.goal, robust.note), link)
