"""What the runner prints at the start and at the end of an experiment: the header and the summary.

Text only: each function returns lines from the spec and the phases' results, and the runner
(`tuner.run.experiment`) prints them. The winners in the summary are the table the runner records in
MLflow (`tuner.results.winners.winners`), so the printed winner is the tagged one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from tuner.layout import RESOLVED_FILE
from tuner.names import COMPLETED, DIVERGED, ERRORED, OUTCOMES, PRUNED
from tuner.results.claim import History, claim_table
from tuner.results.rounding import POINT_DIGITS, fmt_estimate, fmt_interval, fmt_pm
from tuner.results.summary_notes import by_condition, method_warnings, ranking_rule
from tuner.run.progress import fmt_duration
from tuner.run.split import quotas
from tuner.run.stall import stall_reasons
from tuner.run.trial_errors import exception_line, with_hint
from tuner.spec import Spec
from tuner.tracking.tags import experiment_name
from tuner.trial.protocol import outcome, public_values, trial_values
from tuner.value_rules import is_number


def header(spec: Spec, experiment_dir: Path, confirm_runs: int) -> str:
    """A few lines a person reads before the first trial; the full resolved spec goes to a file.

    `confirm_runs`: the confirmation phase's runs at most (`Experiment.confirm_runs_at_most`).
    """
    b = spec.budget
    limit = f", time limit {fmt_duration(b.time_s)}" if b.time_s else ""
    scheduler = f"{spec.scheduler.name} scheduler"
    scheduler += f" on {spec.scheduler.clock}" if spec.scheduler.name != "fifo" else ""
    lines = [f"sharptune: {spec.name}" + (f": {spec.description}" if spec.description else ""),
             f"  methods   {', '.join(spec.methods)}",
             f"  workload  {spec.workload.name}; metric {spec.metric.name} ({spec.metric.goal})",
             f"  search    {b.num_samples} trials{_split(spec)} x {b.trial_grad_evals} grad evals, "
             f"{b.max_concurrent_trials} at a time; {spec.sampler.name} sampler, {scheduler}{limit}"]
    if spec.confirm is not None:
        c = spec.confirm
        lines.append(f"  confirm   top {c.top_k} per method x seeds {list(c.seeds)}"
                     + (f" x {c.describe()}" if c.stress else "")
                     + f" (at most {confirm_runs} runs)")
    lines.append(f"  results   {experiment_dir} (resolved spec: {experiment_dir / RESOLVED_FILE})")
    lines.append(f"  MLflow    {spec.tracking_uri}")
    return "\n".join(lines)


def _split(spec: Spec) -> str:
    """How the trials are shared out: each method's quota (its own study and ASHA), or one shared search."""
    if len(spec.methods) < 2:
        return ""
    if spec.budget.split == "shared":
        return " (shared: one study and one scheduler over every method)"
    quota = sorted(set(quotas(spec).values()))
    each = f"{quota[0]}" if len(quota) == 1 else f"{quota[0]}-{quota[-1]}"
    return f" ({each} per method, each its own study and scheduler)"


def _to_target(row: pd.Series) -> list[str]:
    """Grad evals and seconds to the target, and the fraction of seeds that reach it ('-' where none)."""
    evals, wall, reached = row.get("evals_to_target"), row.get("wall_s_to_target"), row.get("reached_target")
    seconds = "-" if not is_number(wall) else f"{wall:.2g}s" if wall < 10 else fmt_duration(wall)
    return [f"{evals:,.0f}" if is_number(evals) else "-", seconds, f"{reached:.0%}" if is_number(reached) else "-"]


def _cost(row: pd.Series) -> list[str]:
    """Gradient evaluations per step (declared by the method) and the step-time overhead."""
    evals, overhead = row.get("grad_evals_per_step"), row.get("overhead")
    return [f"{evals:g}" if is_number(evals) else "-", f"{fmt_estimate(overhead)}x" if is_number(overhead) else "-"]


def _config(hparams: Any) -> str:
    """The winner's hyperparameters, floats at `POINT_DIGITS` significant digits (no 0.10570046446158274)."""
    shown = {k: float(fmt_estimate(v)) if isinstance(v, float) and is_number(v) else v
             for k, v in (hparams or {}).items()}
    return json.dumps(shown, sort_keys=True, default=str)


def _align(rows: list[list[str]], right: int) -> list[str]:
    """Columns padded to their widest cell; the first is left-aligned, the next `right` right-aligned, the
    rest left-aligned and the last (the config) unpadded."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    out = []
    for r in rows:
        pairs = enumerate(zip(r[:-1], widths, strict=True))
        cells = [c.ljust(w) if i == 0 or i > right else c.rjust(w) for i, (c, w) in pairs]
        out.append("  ".join([*cells, r[-1]]).rstrip())
    return out


def _footer(titles: list[str]) -> str:
    stress = f"; {' / '.join(titles)}: the winner's mean ± half-width over seeds at that level" if titles else ""
    return ("columns: the winner's value and its 95% CI over its runs (the confirmation's seeds), rounded to "
            f"the interval's first significant digit{stress}; grad/step: gradient evaluations per optimizer "
            "step; overhead: median step time over the base optimizer's (sgd/adamw, else the cheapest "
            "method's); to target: median grad evals and seconds to reach the target, and the fraction of "
            "seeds that do; trials c/p/d/e: search trials completed/pruned/diverged/errored; config: the "
            f"winner's hyperparameters at {POINT_DIGITS} significant digits (`python -m tuner export` writes them "
            "exactly)")


def summary(spec: Spec, experiment_dir: Path, search: Any, confirm: Any, table: pd.DataFrame | None,
            trials: pd.DataFrame | None = None, history: History | None = None) -> list[str]:
    """Each method's winner (the one tagged in MLflow) per stress condition, its cost and trial tally, the
    ranking rule and the warnings a reader needs, and where the store is.

    `search` and `confirm` are the phases' Ray results (`confirm` None without that phase); `table` is the
    per-method table in rank order, None when the store could not be read; `trials` the runs it was
    computed from (`tuner.results.winners.winners`), for the stress columns and the claim; `history` the
    store's `metric_history`, for where the claim's quantity started (`first`).
    """
    out = []
    counts: dict[str, dict[str, int]] = {}
    for r in search:
        method = trial_values(r.config).get("method", "?")
        counts.setdefault(method, dict.fromkeys(OUTCOMES, 0))[outcome(r.metrics or {}, r.error is not None)] += 1
    rows = {} if table is None else {row["method"]: row for _, row in table.iterrows() if len(row["run_ids"])}
    source = "" if table is None or not len(table) else f"; winners from the {table['source'].iloc[0]} runs"
    out.append(f"\nsummary of {spec.name} ({spec.metric.name}, {spec.metric.goal}{source}):")
    if rows:
        intervals = any(is_number(r.get("low")) for r in rows.values())
        out.append(ranking_rule(spec.metric.name, spec.metric.goal, table["source"].iloc[0], intervals,
                                bool(spec.constraints)))
    titles, stressed = by_condition(trials, table, spec.metric.name) if rows else ([], {})
    cells = [["method", "rank", spec.metric.name, "95% CI", *titles, "grad/step", "overhead",
              "to target: evals", "s", "seeds", "trials c/p/d/e", "config"]]
    ordered = [*rows, *(m for m in spec.methods if m not in rows)]
    for method in ordered:
        c = counts.get(method, dict.fromkeys(OUTCOMES, 0))
        tally = f"{c[COMPLETED]}/{c[PRUNED]}/{c[DIVERGED]}/{c[ERRORED]}"
        if method in rows and is_number(rows[method]["mean"]):
            row = rows[method]
            at = stressed.get(method, {})
            levels = [fmt_pm(at[t].mean, at[t].low, at[t].high) if t in at else "-" for t in titles]
            cells.append([method, str(int(row["rank"])), *fmt_interval(row["mean"], row["low"], row["high"]),
                          *levels, *_cost(row), *_to_target(row), tally, _config(row["hparams"])])
        else:
            why = "no finite result: every trial diverged" if c[DIVERGED] and c[DIVERGED] == sum(c.values()) \
                else "no finite result" if method in rows else "no completed trial"
            cells.append([method, *["-"] * (len(cells[0]) - 3), tally, f"({why})"])
    out.extend(_align(cells, right=len(cells[0]) - 3))
    out.append(_footer(titles))
    if rows and "target" in table:
        first = table.iloc[0]
        out.append(f"target {fmt_estimate(first['target'])} ({first['target_source']}): each method's winner, "
                   "median grad evals and seconds to reach it over the seeds that do, and the fraction that do")
    errors: dict[str, list[tuple[str, str]]] = {}
    stalled = stall_reasons(experiment_dir)
    for r in [*search, *(confirm or [])]:
        if r.error is not None:
            line = stalled.get((r.metrics or {}).get("trial_id")) or exception_line(r.error)
            config = json.dumps(public_values(trial_values(r.config)), default=str)
            errors.setdefault(trial_values(r.config).get("method", "?"), []).append((with_hint(line), config))
    for method, lines in errors.items():
        out.append(f"errored: {method}: {len(lines)} trial(s); first error: {lines[0][0]}; its config {lines[0][1]}")
    for method in ordered:
        c = counts.get(method, dict.fromkeys(OUTCOMES, 0))
        out.extend(method_warnings(method, rows.get(method), c[COMPLETED], spec.enqueue))
        if not c[COMPLETED]:
            out.append(f"warning: {method} has no trial that ran its whole budget ({c[PRUNED]} pruned, "
                       f"{c[DIVERGED]} diverged, {c[ERRORED]} errored): its row compares nothing at full budget")
    if confirm is not None:
        out.append(f"confirmation: {len(confirm)} runs ({confirm.num_errors} errored); "
                   "`python -m tuner report` draws the comparison")
    out.append(f"MLflow: {spec.tracking_uri} (experiment {experiment_name(spec.name)}); results in {experiment_dir}")
    if spec.tracking_uri.startswith("sqlite:"):
        out.append(f"browse: python -m tuner ui {spec.name} --storage {spec.storage_path}")
    if spec.claim is not None and trials is not None:
        out.extend(claim_lines(spec, claim_table(spec.claim, trials, table, spec.methods, history), table))
    return out


def _claimed(expect: Any) -> str:
    if isinstance(expect, tuple):
        return f"{expect[0]:g}–{expect[1]:g}"
    return expect if isinstance(expect, str) else f"{expect:g}" if is_number(expect) else "-"  # None, NaN: none


def _measured(row: pd.Series) -> list[str]:
    """The setting's mean and interval; 'diverged' when every run did; the runs behind it."""
    if not row["n"]:
        value = ["diverged" if row["n_diverged"] else "no value", "-"]
    else:
        value = list(fmt_interval(row["mean"], row["low"], row["high"]))
    runs = str(row["n"]) + "".join(f" (+{k} {what})" for k, what in ((row["n_diverged"], "diverged"),
                                                                     (row["n_pruned"], "pruned, left out")) if k)
    return [*value, runs]


def claim_lines(spec: Spec, claim: pd.DataFrame, table: pd.DataFrame | None) -> list[str]:
    """The claim spec's last word: its quantity per setting beside the paper's number (`tuner.results.claim`)."""
    c, first_col = spec.claim, []
    if c.measure == "to_target":
        first = table.iloc[0] if table is not None and len(table) and "target" in table else None
        target = f" {fmt_estimate(first['target'])} ({first['target_source']})" if first is not None else ""
        out = [f"\nclaim ({c.source}): grad evals to reach the target {spec.metric.name}{target}, and their "
               f"ratio to {spec.methods[0]}'s"]
        cells = [["method", "grad evals", "seeds", f"x {spec.methods[0]}", "claimed", "verdict"]]
        for _, row in claim.iterrows():
            cells.append([row["method"], f"{row['mean']:,.0f}" if is_number(row["mean"]) else "not reached",
                          f"{row['reached']:.0%}" if is_number(row["reached"]) else "-", fmt_estimate(row["ratio"]),
                          _claimed(row["expect"]), row["verdict"] or "-", ""])
    else:
        per = f", per {' and '.join(c.by)}" if c.by else ""
        out = [f"\nclaim ({c.source}): {c.metric} at the end of training{per}"]
        steps = sorted({float(v) for v in claim["first_at"] if is_number(v)})
        first_col = [] if not steps else [f"at {steps[0]:,.0f}" if len(steps) == 1 else "first"]
        if len(steps) > 1:
            out[0] += " (first: its first logged value)"
        cells = [["method", *c.by, *first_col, c.metric, "95% CI", "runs", "claimed", "verdict"]]
        for _, row in claim.iterrows():
            setting = [f"{v:g}" if is_number(v) else "-" if v is None else str(v) for v in row["setting"].values()]
            first = [fmt_estimate(row["first"])] if first_col else []
            cells.append([row["method"], *setting, *first, *_measured(row), _claimed(row["expect"]),
                          row["verdict"] or "-", ""])
    cells[0].append("")
    out.extend(_align(cells, right=len(cells[0]) - 4) if len(cells) > 1 else ["(no run to read the claim from)"])
    first = f"; {first_col[0]}: where it stood at the first logged point (grad evals)" if first_col else ""
    out.append("claimed: the paper's value or band (or its words); verdict: whether the measured mean lies in "
               f"the claimed band{first}")
    return out
